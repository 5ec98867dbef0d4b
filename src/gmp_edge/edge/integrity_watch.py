"""The running store's integrity check (ADR 0027): ``gmp-edge verify`` while it runs.

The start check (preflight) is cheap on purpose: heads against anchors. What happens to the
file while the service runs (a page corrupted on disk, rows changed behind its back with the
``sqlite3`` shell) is found by the whole check, run here every ``integrity_check_minutes``.
It runs in a child process at low priority: walking a year of seal blocks is CPU work that
would hold the event loop's interpreter lock in a thread, and a second process uses the
second core. Its verdict feeds health (failed while any problem stands), the audit trail and
a critical edge-box alarm, each once per change of the verdict, not once per check.

Readings dominate a store (a year of 2,000 tags at 1 s is 63 G of them; recomputing runs at
~0.26 M/s): each check recomputes the readings sealed since the check before, and a scrub
slice of older ones (``integrity_scrub_readings``), so the whole history is recomputed check
after check; where the scrub stands is kept in ``<store>.scrub`` across restarts (only the
order of the scrub hangs on it). The chain, the other tables, SQLite's check and the anchors
are whole every time.
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
    """The last completed check: when, what it found; ``error`` when it could not run;
    the scrub's place (``through``: the seal head checked; ``scrub_from``: the next slice)."""

    checked_us: int | None = None
    problems: tuple[str, ...] = ()
    error: str | None = None
    checks: int = 0
    through: int | None = None
    scrub_from: int = 1
    readings_checked: int = 0


def scrub_path(store: Path) -> Path:
    """Where the scrub's place is kept between runs."""
    return Path(store).with_suffix(".scrub")


def load_scrub(store: Path) -> int:
    """The block the next scrub starts at (1 when unknown: from the oldest)."""
    try:
        return max(1, int(json.loads(scrub_path(store).read_text())["scrub_from"]))
    except (OSError, ValueError, KeyError, TypeError):
        return 1


def save_scrub(store: Path, scrub_from: int) -> None:
    """Keep the scrub's place (atomically: a torn file would restart the scrub, no more)."""
    path = scrub_path(store)
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(OSError):
        tmp.write_text(json.dumps({"scrub_from": scrub_from}))
        tmp.replace(path)


async def check_once(
    store: Path,
    stop: asyncio.Event | None = None,
    status: IntegrityStatus | None = None,
    budget: int | None = None,
) -> tuple[dict[str, Any], str]:
    """Run the check in a child process: (its JSON answer, "") or ({}, why it did not run).
    With ``status`` and ``budget``, readings are scrubbed from where ``status`` stands.
    A stop ends the child at once (a check is repeated at the next start, never half-used)."""
    cmd = [sys.executable, "-m", JOB, str(store)]
    if status is not None and budget is not None:
        cmd += ["--scrub-from", str(status.scrub_from), "--budget", str(budget)]
        if status.through is not None:
            cmd += ["--through", str(status.through)]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    talk = asyncio.ensure_future(proc.communicate())
    stopped = asyncio.ensure_future(stop.wait()) if stop is not None else None
    waits: list[asyncio.Future[Any]] = [talk] if stopped is None else [talk, stopped]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    if not talk.done():
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await talk
        return {}, "stopped before the check finished"
    if stopped is not None:
        stopped.cancel()
    out, err = talk.result()
    if proc.returncode != 0:
        last = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        return {}, f"the check ended with exit code {proc.returncode}: {last[0]}"
    try:
        answer = json.loads(out)
        answer["problems"] = [str(p) for p in answer["problems"]]
    except (ValueError, KeyError, TypeError) as exc:
        return {}, f"the check answered what cannot be read: {exc}"
    return answer, ""


async def watch_integrity(
    store: Path,
    status: IntegrityStatus,
    stop: asyncio.Event,
    every_s: float,
    on_change: Callable[[IntegrityStatus], None] | None = None,
    scrub_readings: int | None = None,
) -> None:
    """Check the store now and every ``every_s``; keep ``status`` current and call
    ``on_change`` when the set of problems (or whether the check runs) changes.
    ``scrub_readings``: older readings recomputed per check (None: every reading, always)."""
    if scrub_readings is not None:
        status.scrub_from = load_scrub(store)

    async def tick() -> None:
        answer, error = await check_once(store, stop, status, scrub_readings)
        if stop.is_set():
            return
        before = (status.problems, status.error)
        status.checks += 1
        status.error = error or None
        if not error:
            status.checked_us = now_us()
            status.problems = tuple(answer["problems"])
            status.readings_checked = int(answer.get("readings") or 0)
            if scrub_readings is not None:
                status.through = int(answer.get("checked_through") or 0)
                status.scrub_from = int(answer.get("scrub_next") or 1)
                await asyncio.to_thread(save_scrub, store, status.scrub_from)
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
