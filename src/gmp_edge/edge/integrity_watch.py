"""The running store's integrity check (ADR 0027): ``gmp-edge verify`` while it runs.

The start check (preflight) is cheap on purpose: heads against anchors. What happens to the
file while the service runs (a page corrupted on disk, rows changed behind its back with the
``sqlite3`` shell) is found by the whole check, run here every ``integrity_check_minutes``.
It runs in a child process at low priority: walking a year of seal blocks is CPU work that
would hold the event loop's interpreter lock in a thread, and a second process uses the
second core. Its verdict feeds health (failed while any problem stands), the audit trail and
a critical edge-box alarm, each once per change of the verdict, not once per check.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gmp_edge.clock import now_us
from gmp_edge.periodic import Periodic

log = logging.getLogger("gmp_edge.integrity")

JOB = "gmp_edge.edge.verify_job"


@dataclass
class IntegrityStatus:
    """The last completed check: when, what it found; ``error`` when it could not run."""

    checked_us: int | None = None
    problems: tuple[str, ...] = ()
    error: str | None = None
    checks: int = 0


async def check_once(store: Path, stop: asyncio.Event | None = None) -> tuple[list[str], str]:
    """Run the whole check in a child process: (problems, "") or ([], why it did not run).
    A stop ends the child at once (a check is repeated at the next start, never half-used)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        JOB,
        str(store),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    talk = asyncio.ensure_future(proc.communicate())
    stopped = asyncio.ensure_future(stop.wait()) if stop is not None else None
    waits: list[asyncio.Future[Any]] = [talk] if stopped is None else [talk, stopped]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    if not talk.done():
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await talk
        return [], "stopped before the check finished"
    if stopped is not None:
        stopped.cancel()
    out, err = talk.result()
    if proc.returncode != 0:
        last = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        return [], f"the check ended with exit code {proc.returncode}: {last[0]}"
    try:
        problems = json.loads(out)["problems"]
    except (ValueError, KeyError, TypeError) as exc:
        return [], f"the check answered what cannot be read: {exc}"
    return [str(p) for p in problems], ""


async def watch_integrity(
    store: Path,
    status: IntegrityStatus,
    stop: asyncio.Event,
    every_s: float,
    on_change: Callable[[IntegrityStatus], None] | None = None,
) -> None:
    """Check the store now and every ``every_s``; keep ``status`` current and call
    ``on_change`` when the set of problems (or whether the check runs) changes."""

    async def tick() -> None:
        problems, error = await check_once(store, stop)
        if stop.is_set():
            return
        before = (status.problems, status.error)
        status.checks += 1
        status.error = error or None
        if not error:
            status.checked_us = now_us()
            status.problems = tuple(problems)
        if (status.problems, status.error) != before:
            if status.problems:
                log.error(
                    "integrity check of %s: %d problem(s): %s",
                    store,
                    len(status.problems),
                    "; ".join(status.problems[:3]),
                )
            elif status.error:
                log.error("integrity check of %s could not run: %s", store, status.error)
            else:
                log.info("integrity check of %s: verified", store)
            if on_change is not None:
                on_change(status)

    await Periodic(tick, every_s, name="integrity check").run(stop)
