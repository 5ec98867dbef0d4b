"""The strict harness every test runs under.

A test that leaves an asyncio task or a thread running has not cleaned up: the leftover keeps
working into the next test (a second collector on the same store, a forwarder still sending) and
makes failures there that nobody can reproduce. So a test fails when, after all its fixtures are
torn down, a task of its event loop is still pending or a thread it started is still alive. This
follows ophyd-async's harness, which fails tests that leave tasks behind.

Warnings are errors (``filterwarnings`` in pyproject.toml, each exception named there).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

# How long a thread a test has stopped may take to end: a thread told to stop (a server's
# serve_forever, a client's network loop) ends on its own schedule; this bounds a failure only.
THREAD_GRACE_S = 10.0

# Threads that outlive a test by design, each with the reason. Matched by name prefix.
LASTING_THREADS: dict[str, str] = {
    # pytest-timeout's watchdog in thread mode, started and cancelled by the plugin itself
    "pytest_timeout": "the plugin's own timer",
    # AnyIO's pool for Starlette's sync routes and TestClient: idle workers end on their own
    # after 10 s; they belong to AnyIO's runtime and hold no state of a test
    "AnyIO worker thread": "AnyIO's idle worker pool",
}


def _lasting(t: threading.Thread) -> bool:
    return any(t.name.startswith(p) for p in LASTING_THREADS)


def _loop_scope(item: pytest.Item) -> str:
    marker = item.get_closest_marker("asyncio")
    if marker is not None:
        return str(marker.kwargs.get("loop_scope") or marker.kwargs.get("scope") or "function")
    return "function"


def _is_async_test(item: pytest.Item) -> bool:
    from pytest_asyncio.plugin import is_async_test

    return is_async_test(item)


def _pending_tasks(loop: asyncio.AbstractEventLoop) -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks(loop) if not t.done()]


def _describe(task: asyncio.Task) -> str:
    coro = task.get_coro()
    name = getattr(coro, "__qualname__", repr(coro))
    return f"{task.get_name()} ({name})"


@pytest.fixture(autouse=True)
def _leaves_nothing_running(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if it leaves asyncio tasks or threads behind."""
    loop: asyncio.AbstractEventLoop | None = None
    if _is_async_test(request.node) and _loop_scope(request.node) == "function":
        # the test's own runner: set up now, so it is torn down after this fixture, and every
        # other fixture of the test (set up later) is torn down before we look
        runner = request.getfixturevalue("_function_scoped_runner")
        loop = runner.get_loop()
    before = {t.ident for t in threading.enumerate()}
    yield
    problems: list[str] = []
    if loop is not None and not loop.is_closed():
        pending = _pending_tasks(loop)
        if pending:
            problems.append("asyncio tasks left running: " + ", ".join(map(_describe, pending)))
            for t in pending:  # leave the runner a clean loop to close
                t.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        # the default executor's threads (asyncio.to_thread) belong to the loop, not the test
        loop.run_until_complete(loop.shutdown_default_executor())
    deadline = time.monotonic() + THREAD_GRACE_S
    while True:
        left = [
            t
            for t in threading.enumerate()
            if t.ident not in before and t.is_alive() and not _lasting(t)
        ]
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    if left:
        problems.append(
            "threads left running: " + ", ".join(f"{t.name} (daemon={t.daemon})" for t in left)
        )
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)
