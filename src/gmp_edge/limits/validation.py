"""Validation of a proposed limit set: every problem at once, each naming tag and field."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from gmp_edge.limits.model import PRODUCTION_STATES, LimitSet, TagLimits, Threshold, sorted_states
from gmp_edge.limits.presets import regulatory_action_max


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a limit set cannot be approved. ``tag`` is None for set-level fields."""

    tag: str | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"tag {self.tag!r}" if self.tag is not None else "limit set"
        return f"{where}: {self.field}: {self.message}"


def _fmt(x: float) -> str:
    return f"{x:g}"


def _number_problems(t: TagLimits) -> list[Problem]:
    out: list[Problem] = []
    for name in ("alert_high", "action_high", "alert_low", "action_low"):
        th: Threshold | None = getattr(t, name)
        if th is not None and not math.isfinite(th.value):
            out.append(Problem(t.tag, name, f"limit must be a finite number, got {th.value}"))
    for name in ("deadband", "on_delay_s", "off_delay_s"):
        v = getattr(t, name)
        if not math.isfinite(v):
            out.append(Problem(t.tag, name, f"must be a finite number, got {v}"))
        elif v < 0:
            out.append(Problem(t.tag, name, f"must not be negative, got {_fmt(v)}"))
    return out


def _ok(th: Threshold | None) -> bool:
    return th is not None and math.isfinite(th.value)


def validate_tag_limits(
    t: TagLimits,
    known_tags: Iterable[str],
    known_states: Iterable[str] = PRODUCTION_STATES,
) -> list[Problem]:
    """All problems of one entry (see ``validate_limit_set``)."""
    known = set(known_tags)
    states = set(known_states)
    out = _number_problems(t)
    if t.tag not in known:
        out.append(Problem(t.tag, "tag", "unknown tag (not in the tag configuration)"))
    # Alert gives early warning, so it must be reached before the action limit.
    if _ok(t.alert_high) and _ok(t.action_high):
        assert t.alert_high is not None and t.action_high is not None
        if t.alert_high.value > t.action_high.value:
            out.append(
                Problem(
                    t.tag,
                    "alert_high",
                    f"high alert {_fmt(t.alert_high.value)} is above the high action limit "
                    f"{_fmt(t.action_high.value)}; the alert must be inside the action limit",
                )
            )
    if _ok(t.alert_low) and _ok(t.action_low):
        assert t.alert_low is not None and t.action_low is not None
        if t.alert_low.value < t.action_low.value:
            out.append(
                Problem(
                    t.tag,
                    "alert_low",
                    f"low alert {_fmt(t.alert_low.value)} is below the low action limit "
                    f"{_fmt(t.action_low.value)}; the alert must be inside the action limit",
                )
            )
    for lo_name in ("alert_low", "action_low"):
        for hi_name in ("alert_high", "action_high"):
            lo: Threshold | None = getattr(t, lo_name)
            hi: Threshold | None = getattr(t, hi_name)
            if _ok(lo) and _ok(hi):
                assert lo is not None and hi is not None
                if lo.value >= hi.value:
                    out.append(
                        Problem(
                            t.tag,
                            lo_name,
                            f"{lo_name} {_fmt(lo.value)} is not below {hi_name} "
                            f"{_fmt(hi.value)}; the normal range would be empty",
                        )
                    )
                # A deadband as wide as the band makes return to normal impossible
                # without crossing the opposite limit.
                elif (
                    lo_name.split("_")[0] == hi_name.split("_")[0]
                    and t.deadband >= hi.value - lo.value
                ):
                    out.append(
                        Problem(
                            t.tag,
                            "deadband",
                            f"deadband {_fmt(t.deadband)} is not smaller than the "
                            f"{lo_name.split('_')[0]} band {_fmt(lo.value)}..{_fmt(hi.value)}",
                        )
                    )
    if (t.on_delay_s > 0 or t.off_delay_s > 0) and not t.delay_justification.strip():
        out.append(
            Problem(
                t.tag,
                "delay_justification",
                "a delay > 0 needs a written justification (Annex 1: alarm delays must be "
                "assessed and justified)",
            )
        )
    if t.applies_in is not None:
        if not t.applies_in:
            out.append(Problem(t.tag, "applies_in", "empty: the limits would never apply"))
        unknown = sorted(t.applies_in - states)
        if unknown:
            out.append(
                Problem(
                    t.tag,
                    "applies_in",
                    f"unknown production state(s) {', '.join(unknown)}; "
                    f"known: {', '.join(sorted(states))}",
                )
            )
    ceiling = regulatory_action_max(t.kind, t.grade, t.applies_in)
    if ceiling is not None:
        limit, source = ceiling
        if t.action_high is None:
            out.append(
                Problem(t.tag, "action_high", f"missing; a regulatory preset applies ({source})")
            )
        elif _ok(t.action_high) and t.action_high.value > limit:
            out.append(
                Problem(
                    t.tag,
                    "action_high",
                    f"{_fmt(t.action_high.value)} exceeds the regulatory maximum ({source})",
                )
            )
    return out


def validate_limit_set(
    limit_set: LimitSet,
    known_tags: Iterable[str],
    known_states: Iterable[str] = PRODUCTION_STATES,
) -> list[Problem]:
    """Every reason ``limit_set`` cannot be approved; an empty list means valid.

    Checks the set's own fields, each entry (alert inside action, low below high, action
    inside the regulatory preset, non-negative delays and deadband, delay justification,
    known tag and production states) and duplicates: two entries of one tag may coexist
    only when their production states are disjoint.
    """
    tags = set(known_tags)
    states = set(known_states)
    out: list[Problem] = []
    if not limit_set.id.strip():
        out.append(Problem(None, "id", "must not be empty"))
    if limit_set.version < 1:
        out.append(Problem(None, "version", f"must be >= 1, got {limit_set.version}"))
    if not limit_set.reason.strip():
        out.append(Problem(None, "reason", "a reason for the change is required"))
    if not limit_set.proposed_by.strip():
        out.append(Problem(None, "proposed_by", "must not be empty"))
    if limit_set.approved_by is not None and limit_set.approved_by == limit_set.proposed_by:
        out.append(
            Problem(None, "approved_by", "the approver must not be the proposer (four eyes)")
        )
    by_tag: dict[str, list[TagLimits]] = defaultdict(list)
    for t in limit_set.limits:
        out.extend(validate_tag_limits(t, tags, states))
        by_tag[t.tag].append(t)
    for tag, entries in by_tag.items():
        for i, a in enumerate(entries):
            for b in entries[i + 1 :]:
                if a.applies_in is None or b.applies_in is None:
                    overlap = "all states" if a.applies_in is None else sorted_states(a.applies_in)
                    if b.applies_in is not None and a.applies_in is None:
                        overlap = sorted_states(b.applies_in)
                else:
                    common = a.applies_in & b.applies_in
                    if not common:
                        continue
                    overlap = sorted_states(common)
                out.append(
                    Problem(
                        tag,
                        "tag",
                        f"duplicate entry: two entries apply in {overlap}",
                    )
                )
    return out
