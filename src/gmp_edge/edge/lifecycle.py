"""Audit entries for the service's own life: start (config and its hash, clock status),
stop, crashes, clock corrections, signed anchors and the integrity check's verdicts."""

from __future__ import annotations

import asyncio
import logging
import socket
import sqlite3
from pathlib import Path

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.clock import now_us
from gmp_edge.edge.clock_status import ClockWatch, clock_status
from gmp_edge.edge.integrity_watch import IntegrityStatus
from gmp_edge.historian.store import StoreError
from gmp_edge.integrity.anchoring import Preflight, anchor_now
from gmp_edge.integrity.anchors import Anchor
from gmp_edge.integrity.keys import SigningKeyError
from gmp_edge.monitoring.engine import MonitoringEngine
from gmp_edge.periodic import Periodic
from gmp_edge.supervise import TaskFailure
from gmp_edge.timefmt import iso

log = logging.getLogger("gmp_edge.audit")
SYSTEM_ACTOR = f"system:gmp-edge@{socket.gethostname()}"
VERSION = "0.1.0"


def anchor(trail: AuditTrail, when: str) -> None:
    """Log the audit chain head (the signed anchors are in the anchors file)."""
    seq, digest = trail.head()
    log.info("audit chain head at %s: entry %d sha256 %s", when, seq, digest)


def write_anchor(store: Path, kind: str) -> Anchor | None:
    """Sign and append an anchor of the store's heads (ADR 0027); a failure is logged (the
    next anchor covers what this one would have) and returns None."""
    try:
        a = anchor_now(store, kind)
    except (OSError, sqlite3.Error, SigningKeyError) as exc:
        log.error("cannot write the %s anchor of %s: %s", kind, store, exc)
        return None
    log.info(
        "anchor (%s): audit entry %d, seal block %s, signed by key %s",
        kind,
        a.audit_seq,
        a.seal_seq,
        a.key[:16],
    )
    return a


async def anchor_periodically(store: Path, stop: asyncio.Event, every_s: float) -> None:
    """Write a signed anchor every ``every_s`` while running (the stop anchor is written by
    the caller once everything is closed). In the loop, not a thread: a read of two rows,
    a signature and an fsync, minutes apart."""

    async def write() -> None:
        write_anchor(store, "periodic")

    await Periodic(
        write, every_s, name="audit anchor", first_at_start=False, last_on_stop=False
    ).run(stop)


def audit_crash(trail: AuditTrail, pre: Preflight, last_heartbeat_us: int | None) -> None:
    """Record that the previous run ended without a stop anchor (killed, power lost): when
    it was last alive, how long the box was down and what was written after its last
    anchor."""
    if not pre.crashed or pre.newest is None:
        return
    now = now_us()
    last_alive = max(x for x in (last_heartbeat_us, pre.newest.at_us) if x is not None)
    trail.append(
        SYSTEM_ACTOR,
        "service.crash_recovered",
        "service",
        "gmp-edge",
        "the previous run did not stop cleanly (no stop anchor)",
        None,
        {
            "last_heartbeat": None if last_heartbeat_us is None else iso(last_heartbeat_us),
            "last_anchor": iso(pre.newest.at_us),
            "downtime_s": round((now - last_alive) / 1e6, 3),
            "audit_entries_after_last_anchor": pre.unanchored_audit,
            "seal_blocks_after_last_anchor": pre.unanchored_blocks,
        },
    )


def audit_start(trail: AuditTrail, config_path: str | Path, config_sha256: str) -> None:
    """Record the service start with the configuration file's hash and the clock status."""
    anchor(trail, "start")
    path = str(Path(config_path).resolve())
    trail.append(
        SYSTEM_ACTOR,
        "config.loaded",
        "config",
        path,
        "service start",
        None,
        {"sha256": config_sha256},
    )
    trail.append(
        SYSTEM_ACTOR,
        "service.started",
        "service",
        "gmp-edge",
        "",
        None,
        {"version": VERSION, "config_sha256": config_sha256, "clock": clock_status()},
    )


def audit_task_failure(trail: AuditTrail, failure: TaskFailure) -> None:
    """Record that a long-lived task died while the service ran (health is failed)."""
    try:
        trail.append(
            SYSTEM_ACTOR,
            "service.task_failed",
            "service",
            failure.task,
            failure.reason,
            None,
            {"task": failure.task, "at_us": failure.at_us},
        )
    except Exception:  # the trail itself may be what failed: the log keeps it then
        log.exception("could not audit the failure of task %s", failure.task)


def audit_stop(trail: AuditTrail, reason: str = "stop requested") -> None:
    """Record a clean stop and log the final chain head."""
    trail.append(SYSTEM_ACTOR, "service.stopped", "service", "gmp-edge", reason)
    anchor(trail, "stop")


async def watch_clock(trail: AuditTrail, stop: asyncio.Event, every_s: float = 1.0) -> None:
    """Audit every wall-clock step (NTP correction, manual change) while running."""
    watch = ClockWatch()

    async def sample() -> None:
        jump = watch.sample()
        if jump is not None:
            log.warning("wall clock stepped by %+.3f s", jump.delta_s)
            await asyncio.to_thread(
                trail.append,
                SYSTEM_ACTOR,
                "clock.corrected",
                "clock",
                "system",
                "wall clock stepped against the monotonic clock",
                None,
                {"delta_s": round(jump.delta_s, 6)},
            )

    await Periodic(
        sample, every_s, name="clock watch", first_at_start=False, last_on_stop=True
    ).run(stop)


def integrity_changed(
    trail: AuditTrail, engine: MonitoringEngine, store: Path, status: IntegrityStatus
) -> None:
    """The integrity check's verdict changed: an audit entry and the critical edge-box
    alarm ``integrity`` (raised while problems stand, cleared when a check verifies)."""
    if status.error and not status.problems:
        return  # a check that could not run says nothing of the record (health degraded)
    failed = bool(status.problems)
    reason = (
        f"{len(status.problems)} problem(s): " + "; ".join(status.problems[:5])
        if failed
        else "the store verified: SQLite, audit chain, seal ledger and anchors"
    )
    try:
        trail.append(
            SYSTEM_ACTOR,
            "integrity.check_failed" if failed else "integrity.check_passed",
            "store",
            store.name,
            reason[:2000],
        )
        engine.system_condition("integrity", failed, float(len(status.problems)), 0.0, reason)
    except (
        sqlite3.Error,
        OSError,
        StoreError,
    ) as exc:  # a store too damaged to record it: health says so
        log.error("cannot record the integrity verdict: %s", exc)
