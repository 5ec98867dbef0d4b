"""The system-health verdict (pure): ok, degraded or failed, always with its reasons.

Health answers "is the box doing its job?", not "is the process in spec?": alarms are the
plant's state and are reported beside health, never folded into it (a room in alarm on a
box that records it faithfully is a healthy box). The verdict is the worst of its reasons:

- **failed**: the record is at risk now: the store refuses commits, a supervised task died,
  the record failed its integrity check, the reading buffer is full.
- **degraded**: part of the record is missing or less trustworthy, or the box is not keeping
  up (polls missed in the last minute, slow commits, the reading buffer filling, limit
  evaluation behind): a device not connected,
  a tag Bad for longer than the configured number of polls, the clock not known to be
  synchronised, limit evaluation failing, notifications dropped, the integrity check not
  running.

A person reading the health answer and a monitoring system scraping ``/metrics`` get the
same verdict from this one function.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["starting", "ok", "degraded", "failed"]
SLOW_COMMIT_MS = 1000.0  # a commit slower than this: readings wait in memory longer than 1 s
BUFFER_FILLING = 0.5  # share of the reading buffer in use that is worth a reason
MONITORING_BEHIND_S = 10.0  # alarms this much later than the readings that raise them
_RANK: dict[Status, int] = {"starting": 0, "ok": 1, "degraded": 2, "failed": 3}


@dataclass(frozen=True, slots=True)
class Reason:
    """One thing that keeps health from ok: a stable code, its weight and a sentence."""

    code: str
    severity: Literal["degraded", "failed"]
    text: str


@dataclass(frozen=True, slots=True)
class DeviceState:
    """What health needs of a device."""

    id: str
    connected: bool
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class BadTag:
    """A tag whose newest readings are Bad: for how long and how many polls."""

    tag: str
    bad_for_s: float
    polls: int
    message: str | None = None


@dataclass(frozen=True, slots=True)
class HealthInputs:
    """Everything the verdict depends on, read once per request."""

    started: bool
    store_error: str | None = None
    failed_tasks: Sequence[tuple[str, str]] = ()  # (task, reason)
    devices: Sequence[DeviceState] = ()
    bad_tags: Sequence[BadTag] = ()
    bad_tag_polls: int = 3
    clock_synchronised: bool | None = None  # None: the OS cannot say
    clock_check: Literal["required", "not_reported"] = "required"
    monitoring_error: str | None = None
    notifications_dropped: int = 0
    integrity_problems: Sequence[str] = ()  # the last whole integrity check's findings
    # keeping up (issue 15: a service at twice its capacity answered "ok"): poll slots
    # missed in the last minute per device, the newest commit's duration, the share of the
    # reading buffer in use, and how far limit evaluation is behind the committed readings
    missed_polls: Sequence[tuple[str, int]] = ()
    missed_polls_span_s: float = 60.0  # what "recently" spans for missed_polls
    missed_polls_allowed: int = 3  # [health] missed_polls: from this many, degraded
    last_commit_ms: float | None = None
    buffer_share: float = 0.0
    monitoring_behind_s: float = 0.0
    integrity_error: str | None = None  # why the integrity check could not run


@dataclass(frozen=True, slots=True)
class Health:
    """The verdict and every reason for it (empty when ok)."""

    status: Status
    reasons: tuple[Reason, ...] = field(default=())


def assess_health(h: HealthInputs) -> Health:
    """The health verdict for ``h``: the worst severity among its reasons."""
    if not h.started:
        return Health("starting")
    reasons: list[Reason] = []
    if h.store_error:
        reasons.append(
            Reason("store_failing", "failed", f"the local store refuses commits: {h.store_error}")
        )
    if h.integrity_problems:
        more = len(h.integrity_problems) - 1
        tail = f" (and {more} more)" if more else ""
        reasons.append(
            Reason(
                "integrity_failed",
                "failed",
                f"the record failed its integrity check: {h.integrity_problems[0]}{tail}; "
                "run 'gmp-edge verify'",
            )
        )
    if h.integrity_error:
        reasons.append(
            Reason(
                "integrity_unchecked",
                "degraded",
                f"the integrity check could not run: {h.integrity_error}",
            )
        )
    for task, why in h.failed_tasks:
        reasons.append(Reason("task_died", "failed", f"task {task} stopped: {why}"))
    for d in h.devices:
        if not d.connected:
            tail = f": {d.last_error}" if d.last_error else ""
            reasons.append(Reason("device_down", "degraded", f"device {d.id} not connected{tail}"))
    for t in h.bad_tags:
        if t.polls >= h.bad_tag_polls:
            tail = f": {t.message}" if t.message else ""
            reasons.append(
                Reason(
                    "tag_bad",
                    "degraded",
                    f"{t.tag} Bad for {t.bad_for_s:.0f} s ({t.polls} polls){tail}",
                )
            )
    for device, n in h.missed_polls:
        if n >= h.missed_polls_allowed:
            reasons.append(
                Reason(
                    "polls_missed",
                    "degraded",
                    f"device {device} missed {n} poll(s) in the last"
                    f" {h.missed_polls_span_s:.0f} s: collection is not keeping up (each"
                    " missed poll is a recorded gap)",
                )
            )
    if h.last_commit_ms is not None and h.last_commit_ms > SLOW_COMMIT_MS:
        reasons.append(
            Reason(
                "commits_slow",
                "degraded",
                f"the newest commit took {h.last_commit_ms / 1000:.1f} s (over"
                f" {SLOW_COMMIT_MS / 1000:.0f} s): readings wait in memory",
            )
        )
    if h.buffer_share >= BUFFER_FILLING:
        reasons.append(
            Reason(
                "buffer_filling",
                "failed" if h.buffer_share >= 1.0 else "degraded",
                f"the reading buffer is {h.buffer_share:.0%} full: at 100 % the devices are"
                " held back and polls are missed",
            )
        )
    if h.monitoring_behind_s > MONITORING_BEHIND_S:
        reasons.append(
            Reason(
                "monitoring_behind",
                "degraded",
                f"limit evaluation is {h.monitoring_behind_s:.0f} s behind the committed"
                " readings: alarms come late",
            )
        )
    if h.clock_synchronised is False:
        reasons.append(Reason("clock_unsynchronised", "degraded", "the clock is not synchronised"))
    elif h.clock_synchronised is None and h.clock_check == "required":
        reasons.append(
            Reason(
                "clock_unknown",
                "degraded",
                "the operating system does not report clock synchronisation "
                '(set [health] clock_check = "not_reported" where a time source the OS '
                "cannot report is validated)",
            )
        )
    if h.monitoring_error:
        reasons.append(
            Reason(
                "monitoring_failing", "degraded", f"limit evaluation fails: {h.monitoring_error}"
            )
        )
    if h.notifications_dropped:
        reasons.append(
            Reason(
                "notifications_dropped",
                "degraded",
                f"{h.notifications_dropped} notification(s) could not be delivered",
            )
        )
    status: Status = "ok"
    for r in reasons:
        if _RANK[r.severity] > _RANK[status]:
            status = r.severity
    return Health(status, tuple(reasons))
