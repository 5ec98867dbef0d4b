"""The strict harness itself: a test that leaves a task or a thread behind fails."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

HARNESS = (Path(__file__).parent / "conftest.py").read_text()

LEAKY = """
import asyncio
import threading
import warnings

stop = threading.Event()


async def test_leaves_a_task():
    asyncio.create_task(asyncio.sleep(3600), name="forgotten")


def test_leaves_a_thread():
    threading.Thread(target=stop.wait, name="forgotten-thread", daemon=True).start()


async def test_cleans_up():
    task = asyncio.create_task(asyncio.sleep(3600))
    task.cancel()
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()


def test_warns():
    warnings.warn("a deprecation nobody looked at", DeprecationWarning, stacklevel=1)
"""


def test_leftover_tasks_threads_and_warnings_fail(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(HARNESS.replace("THREAD_GRACE_S = 10.0", "THREAD_GRACE_S = 0.2"))
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\n"
    )
    pytester.makepyfile(test_leaky=LEAKY)
    result = pytester.runpytest_subprocess("-p", "asyncio", "-q")
    result.assert_outcomes(passed=3, failed=1, errors=2)
    result.stdout.fnmatch_lines(["*asyncio tasks left running: forgotten*"])
    result.stdout.fnmatch_lines(["*threads left running: forgotten-thread*"])
    result.stdout.fnmatch_lines(["*DeprecationWarning: a deprecation nobody looked at*"])
