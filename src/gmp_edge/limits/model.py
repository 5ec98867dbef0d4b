"""Limit sets: versioned, approvable alert and action limits per tag (no I/O).

A ``LimitSet`` is the record a QA approver signs: an id, a version, the instant it takes
effect, the reason for the change, who proposed it and who approved it, and one
``TagLimits`` entry per tag (or several per tag when they apply in disjoint production
states, e.g. grade B at rest and grade B in operation). ``content()`` is the canonical
dict that is hashed and signed; the approval itself is not part of it.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

AT_REST = "at_rest"
IN_OPERATION = "in_operation"
PRODUCTION_STATES: frozenset[str] = frozenset({AT_REST, IN_OPERATION})


class Level(StrEnum):
    """Annex 1 limit levels: the alert level warns, the action limit calls for investigation."""

    ALERT = "alert"
    ACTION = "action"


class Side(StrEnum):
    """Which way a limit is crossed."""

    HIGH = "high"
    LOW = "low"


class Condition(StrEnum):
    """A condition the engine tracks per tag: four limits plus loss of monitoring."""

    ALERT_HIGH = "alert_high"
    ALERT_LOW = "alert_low"
    ACTION_HIGH = "action_high"
    ACTION_LOW = "action_low"
    MONITORING_UNAVAILABLE = "monitoring_unavailable"

    @property
    def level(self) -> Level | None:
        """Alert or action; None for monitoring_unavailable."""
        if self is Condition.MONITORING_UNAVAILABLE:
            return None
        return Level(self.value.split("_")[0])

    @property
    def side(self) -> Side | None:
        """High or low; None for monitoring_unavailable."""
        if self is Condition.MONITORING_UNAVAILABLE:
            return None
        return Side(self.value.split("_")[1])


LIMIT_CONDITIONS: tuple[Condition, ...] = (
    Condition.ACTION_HIGH,
    Condition.ALERT_HIGH,
    Condition.ALERT_LOW,
    Condition.ACTION_LOW,
)


class TagKind(StrEnum):
    """What a tag measures; selects presets and the regulatory ceiling check."""

    PARTICLES_0_5 = "particles_0_5"  # >= 0.5 um, particles/m3
    PARTICLES_5_0 = "particles_5_0"  # >= 5.0 um, particles/m3
    DP = "dp"  # differential pressure, Pa
    TEMPERATURE = "temperature"  # degC
    RH = "rh"  # % relative humidity
    PRESS = "press"  # tablet-press process parameter
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Threshold:
    """One limit value and how it compares.

    ``inclusive=False`` (the default) means the limit value itself is still acceptable:
    a high limit is crossed by ``value > limit``, a low limit by ``value < limit``; this
    is how "maximum permitted" tables such as Annex 1 Table 5 read. ``inclusive=True``
    makes the limit value itself an excursion (``>=`` / ``<=``).
    """

    value: float
    inclusive: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"value": float(self.value), "inclusive": self.inclusive}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Threshold:
        """Inverse of ``to_dict``."""
        return cls(float(d["value"]), bool(d["inclusive"]))


@dataclass(frozen=True, slots=True)
class TagLimits:
    """Alert and action limits of one tag in the production states ``applies_in``.

    - ``deadband`` (engineering units, >= 0): to return to normal the value must be back
      inside the limit by this much (``limit - deadband`` for high, ``+`` for low).
    - ``on_delay_s``: the value must stay beyond the limit this long before the condition
      becomes active. ``off_delay_s``: it must stay back inside (past the deadband) this
      long before the condition clears. Annex 1 asks for alarm delays to be assessed and
      justified, so any delay > 0 needs ``delay_justification``.
    - ``applies_in``: production states in which the limits apply; None = always, even
      when the state is unknown.
    - ``continuous_monitoring_required``: loss of monitoring (Bad/Uncertain readings)
      while the limits apply is itself a deviation (decided downstream).
    - ``kind`` and ``grade`` (Annex 1 room grade A-D) select the regulatory ceiling that
      validation checks the action limits against; None = no preset applies.
    """

    tag: str
    alert_high: Threshold | None = None
    action_high: Threshold | None = None
    alert_low: Threshold | None = None
    action_low: Threshold | None = None
    deadband: float = 0.0
    on_delay_s: float = 0.0
    off_delay_s: float = 0.0
    delay_justification: str = ""
    applies_in: frozenset[str] | None = None
    continuous_monitoring_required: bool = False
    kind: TagKind | None = None
    grade: str | None = None

    def __post_init__(self) -> None:
        if self.applies_in is not None and not isinstance(self.applies_in, frozenset):
            object.__setattr__(self, "applies_in", frozenset(self.applies_in))

    def threshold(self, condition: Condition) -> Threshold | None:
        """The threshold behind a limit condition (None if not set or not a limit)."""
        return {
            Condition.ALERT_HIGH: self.alert_high,
            Condition.ALERT_LOW: self.alert_low,
            Condition.ACTION_HIGH: self.action_high,
            Condition.ACTION_LOW: self.action_low,
        }.get(condition)

    def applies(self, state: str | None) -> bool:
        """Whether these limits apply in production state ``state`` (None = unknown)."""
        return self.applies_in is None or (state is not None and state in self.applies_in)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, canonical form (sets sorted, floats as floats)."""

        def th(t: Threshold | None) -> dict[str, Any] | None:
            return None if t is None else t.to_dict()

        return {
            "tag": self.tag,
            "alert_high": th(self.alert_high),
            "action_high": th(self.action_high),
            "alert_low": th(self.alert_low),
            "action_low": th(self.action_low),
            "deadband": float(self.deadband),
            "on_delay_s": float(self.on_delay_s),
            "off_delay_s": float(self.off_delay_s),
            "delay_justification": self.delay_justification,
            "applies_in": None if self.applies_in is None else sorted(self.applies_in),
            "continuous_monitoring_required": self.continuous_monitoring_required,
            "kind": None if self.kind is None else self.kind.value,
            "grade": self.grade,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TagLimits:
        """Inverse of ``to_dict``."""

        def th(key: str) -> Threshold | None:
            v = d.get(key)
            return None if v is None else Threshold.from_dict(v)

        applies = d.get("applies_in")
        return cls(
            tag=d["tag"],
            alert_high=th("alert_high"),
            action_high=th("action_high"),
            alert_low=th("alert_low"),
            action_low=th("action_low"),
            deadband=float(d.get("deadband", 0.0)),
            on_delay_s=float(d.get("on_delay_s", 0.0)),
            off_delay_s=float(d.get("off_delay_s", 0.0)),
            delay_justification=d.get("delay_justification", ""),
            applies_in=None if applies is None else frozenset(applies),
            continuous_monitoring_required=bool(d.get("continuous_monitoring_required", False)),
            kind=None if d.get("kind") is None else TagKind(d["kind"]),
            grade=d.get("grade"),
        )


@dataclass(frozen=True, slots=True)
class LimitSet:
    """A versioned, approvable set of tag limits.

    ``approved_by`` is None until a second person approves the set; the approval is a
    signature over ``content()``, which therefore leaves ``approved_by`` out.
    """

    id: str
    version: int
    effective_from_us: int
    reason: str
    proposed_by: str
    approved_by: str | None = None
    limits: tuple[TagLimits, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not isinstance(self.limits, tuple):
            object.__setattr__(self, "limits", tuple(self.limits))

    @property
    def approved(self) -> bool:
        """True once someone has approved the set."""
        return self.approved_by is not None

    @property
    def tags(self) -> frozenset[str]:
        """Tags that have at least one entry."""
        return frozenset(t.tag for t in self.limits)

    def entries_for(self, tag: str) -> tuple[TagLimits, ...]:
        """All entries of ``tag`` (one per disjoint set of production states)."""
        return tuple(t for t in self.limits if t.tag == tag)

    def content(self) -> dict[str, Any]:
        """Canonical dict for hashing and signing: entries sorted by tag and states.

        ``approved_by`` and ``effective_from_us`` are left out: approval sets them, and
        the approval signature must stay valid for the content it approved.
        """
        entries = sorted(
            (t.to_dict() for t in self.limits),
            key=lambda d: (d["tag"], d["applies_in"] is not None, d["applies_in"] or []),
        )
        return {
            "id": self.id,
            "version": int(self.version),
            "reason": self.reason,
            "proposed_by": self.proposed_by,
            "limits": entries,
        }

    def canonical_json(self) -> str:
        """``content()`` as compact JSON with sorted keys (the bytes that get signed)."""
        return json.dumps(self.content(), sort_keys=True, separators=(",", ":"), allow_nan=False)

    def digest(self) -> str:
        """SHA-256 hex digest of ``canonical_json()``."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """Full JSON-able record: ``content()`` plus ``approved_by`` and ``effective_from_us``."""
        return {
            **self.content(),
            "effective_from_us": int(self.effective_from_us),
            "approved_by": self.approved_by,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LimitSet:
        """Inverse of ``to_dict`` (also accepts ``content()``: unapproved, effective 0)."""
        return cls(
            id=d["id"],
            version=int(d["version"]),
            effective_from_us=int(d.get("effective_from_us", 0)),
            reason=d["reason"],
            proposed_by=d["proposed_by"],
            approved_by=d.get("approved_by"),
            limits=tuple(TagLimits.from_dict(x) for x in d["limits"]),
        )

    def with_limits(self, limits: Iterable[TagLimits]) -> LimitSet:
        """A copy with other entries (for building proposals)."""
        return LimitSet(
            self.id,
            self.version,
            self.effective_from_us,
            self.reason,
            self.proposed_by,
            self.approved_by,
            tuple(limits),
        )


def finite(x: float) -> bool:
    """True for a real, finite number."""
    return isinstance(x, int | float) and math.isfinite(x)


def sorted_states(states: Sequence[str] | frozenset[str] | None) -> str:
    """Human text for a set of production states."""
    return "all states" if states is None else ", ".join(sorted(states)) or "(none)"
