"""Audit entries for the service's own life: start (config and its hash, clock status),
stop, clock corrections, and the chain head logged as an anchor."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.clock import now_us
from gmp_edge.edge.clock_status import ClockWatch, clock_status
from gmp_edge.periodic import Periodic
from gmp_edge.supervise import TaskFailure
from gmp_edge.timefmt import iso

log = logging.getLogger("gmp_edge.audit")
SYSTEM_ACTOR = f"system:gmp-edge@{socket.gethostname()}"
VERSION = "0.1.0"


def anchor(trail: AuditTrail, when: str) -> None:
    """Log the chain head so a later `audit verify` can be checked against it."""
    seq, digest = trail.head()
    log.info("audit chain head at %s: entry %d sha256 %s", when, seq, digest)


async def anchor_periodically(
    trail: AuditTrail, stop: asyncio.Event, every_s: float, anchors_file: Path
) -> None:
    """Write the chain head to the log and to an anchors file every ``every_s``.

    The anchors file lives beside the database but outside it: a trail rewritten or
    cut back behind the product's back no longer matches the heads written here
    (``gmp-edge audit verify --expect-head``). Copy it off the box to make it stronger.
    """

    async def write_anchor() -> None:
        seq, digest = trail.head()
        anchor(trail, "periodic anchor")
        line = f"{iso(now_us())} seq={seq} sha256={digest}\n"
        try:
            with anchors_file.open("a", encoding="utf-8") as f:
                f.write(line)
        except OSError as exc:  # a full disk must not stop collection; the log has it
            log.error("cannot write audit anchor to %s: %s", anchors_file, exc)

    await Periodic(
        write_anchor, every_s, name="audit anchor", first_at_start=False, last_on_stop=True
    ).run(stop)


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
