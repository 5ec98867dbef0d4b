"""The running store's whole integrity check: a change made behind the running service's
back (the probe's ``update readings ...`` with the ``sqlite3`` shell, a corrupt page) turns
health failed, writes one audit entry and raises a critical alarm; a store that verifies
again clears them. The check really runs ``gmp-edge verify``'s code in a child process."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gmp_edge.edge.integrity_watch import (
    IntegrityStatus,
    check_once,
    load_scrub,
    watch_integrity,
)
from gmp_edge.edge.lifecycle import integrity_changed
from gmp_edge.services.health import HealthInputs, assess_health
from tests.security import test_tamper as tamper
from tests.unit.conftest import recording, small_plant
from tests.waiting import until

ONCE_S = 3600  # the watch checks once within a test


def health(status: IntegrityStatus) -> tuple[str, list[str]]:
    h = assess_health(
        HealthInputs(
            started=True,
            clock_synchronised=True,
            integrity_problems=status.problems,
            integrity_error=status.error,
        )
    )
    return h.status, [r.text for r in h.reasons]


async def watch_once(
    db: Path, status: IntegrityStatus, changes: list[tuple[str, ...]], scrub: int | None = None
) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(
        watch_integrity(db, status, stop, ONCE_S, lambda s: changes.append(s.problems), scrub)
    )
    checks = status.checks
    await until(lambda: status.checks > checks, timeout=120, what="one integrity check")
    stop.set()
    await task


async def test_a_change_behind_the_running_service_fails_health(tmp_path: Path) -> None:
    box = tamper.Box(tmp_path)
    status = IntegrityStatus()
    changes: list[tuple[str, ...]] = []
    await watch_once(box.db, status, changes)
    assert status.problems == () and status.error is None and status.checked_us
    assert health(status) == ("ok", [])
    assert changes == []  # nothing changed: nothing announced
    box.sql("update readings set value = value + 100 where rowid = 7")
    await watch_once(box.db, status, changes)
    assert "rows changed outside gmp-edge" in " ".join(status.problems)
    verdict, reasons = health(status)
    assert verdict == "failed"
    assert "failed its integrity check" in reasons[0] and "gmp-edge verify" in reasons[0]
    assert len(changes) == 1
    # checked again with the problem still there: announced once, not per check
    await watch_once(box.db, status, changes)
    assert len(changes) == 1 and status.checks == 3


async def test_a_check_that_cannot_run_is_degraded_not_ok(tmp_path: Path) -> None:
    answer, error = await check_once(tmp_path / "no-such-dir" / "store.db")
    # a store that does not exist is a finding of the check, not a crash of it
    assert error == "" and answer["problems"]


def test_the_verdict_is_audited_and_alarmed_once_per_change(tmp_path: Path) -> None:
    cfg, sha = small_plant().load(tmp_path)
    with recording(cfg, sha) as box:
        failed = IntegrityStatus(checked_us=1, problems=("readings rowid 7: rows changed",))
        integrity_changed(box.trail, box.engine, cfg.store.path, failed)
        (alarm,) = box.books.alarms.all()
        assert alarm.priority.value == "critical"
        assert alarm.tag.endswith("/edge/box/store/integrity") and alarm.condition_active
        integrity_changed(box.trail, box.engine, cfg.store.path, IntegrityStatus(checked_us=2))
        (alarm,) = box.books.alarms.all()
        assert not alarm.condition_active
        actions = [e.action for e in box.trail.entries(record_type="store")]
        assert actions == ["integrity.check_failed", "integrity.check_passed"]
        assert "rows changed" in box.trail.entries(record_type="store")[0].reason


async def test_the_scrub_place_survives_a_restart(tmp_path: Path) -> None:
    box = tamper.Box(tmp_path)
    status = IntegrityStatus()
    await watch_once(box.db, status, [], scrub=100)  # the store holds ~400 readings
    assert status.problems == () and status.through and status.readings_checked >= 100
    kept = load_scrub(box.db)
    assert kept == status.scrub_from > 1
    # the next run (a fresh status) goes on where the scrub stood
    again = IntegrityStatus()
    await watch_once(box.db, again, [], scrub=100)
    assert again.checks == 1 and again.problems == ()
    # from where it stood the rest fits in one slice, so it came round to the oldest again
    # (started from the oldest, it would have stopped at the same place as the first run)
    assert load_scrub(box.db) == 1
