"""Deviation types: enums, the excursion summary, evidence, the deviation record and its
transitions, and the errors of the lifecycle.

All values are frozen and round-trip through JSON (``to_dict``/``from_dict``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import Enum, StrEnum
from typing import Any, Self

from gmp_edge import errors


class Classification(StrEnum):
    """Deviation class (PIC/S PI 040-1 critical / major / other≈minor)."""

    MINOR = "minor"
    MAJOR = "major"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 minor, 1 major, 2 critical: to tell whether a new proposal is an escalation."""
        return _RANK[self]


_RANK = {Classification.MINOR: 0, Classification.MAJOR: 1, Classification.CRITICAL: 2}

#: Classes whose closure needs a CAPA reference.
CAPA_REQUIRED = frozenset({Classification.MAJOR, Classification.CRITICAL})


class Source(StrEnum):
    """Where the deviation came from."""

    EXCURSION = "excursion"
    MONITORING_LOSS = "monitoring_loss"
    MANUAL = "manual"


class Status(StrEnum):
    """Deviation lifecycle status."""

    OPEN = "open"
    UNDER_INVESTIGATION = "under_investigation"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class Action(StrEnum):
    """What a user (or the system) does to a deviation."""

    RAISE = "raise"
    START_INVESTIGATION = "start_investigation"
    AMEND = "amend"  # record findings, affected batches, links, evidence updates
    CLOSE = "close"
    CANCEL = "cancel"


class ExcursionKind(StrEnum):
    """What the excursion summary describes."""

    ALERT = "alert"  # alert limit exceeded
    ACTION = "action"  # action limit exceeded
    MONITORING_LOSS = "monitoring_loss"  # the tag could not be monitored (gap)


class ProductionState(StrEnum):
    """Room state as Annex 1 uses it for limits."""

    AT_REST = "at_rest"
    IN_OPERATION = "in_operation"


SYSTEM = "system"  # actor for automatic deviation drafts


class DeviationError(errors.GmpEdgeError, ValueError):
    """Base of every refusal by the deviation core."""


class StaleVersion(DeviationError):
    """The deviation changed since the caller read it (optimistic concurrency)."""

    def __init__(self, deviation_id: str, expected: int, actual: int):
        self.deviation_id = deviation_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"deviation {deviation_id} was changed by someone else: you edited version "
            f"{expected}, it is now at version {actual}; reload and try again"
        )


class IllegalDeviationTransition(DeviationError, errors.IllegalTransition):
    """The action is not allowed in the deviation's status."""

    def __init__(self, deviation_id: str, status: Status, action: Action, allowed: str):
        self.deviation_id = deviation_id
        self.status = status
        self.action = action
        super().__init__(
            f"deviation {deviation_id}: '{action}' is not allowed in status '{status}'"
            f" (allowed in: {allowed})"
        )


class MissingDeviationFields(DeviationError, errors.MissingFields):
    """Required fields of an action are missing or blank; lists all of them."""

    def __init__(self, deviation_id: str, action: Action, missing: list[str]):
        self.deviation_id = deviation_id
        self.action = action
        self.missing = tuple(missing)
        super().__init__(f"deviation {deviation_id}: '{action}' needs {', '.join(missing)}")


class InvalidValue(DeviationError):
    """A field is present but not acceptable."""


def enc(v: Any) -> Any:
    """JSON-friendly form: enums as values, tuples/frozensets as lists, dataclasses as dicts."""
    if isinstance(v, Enum):
        return v.value
    if hasattr(v, "to_dict"):
        return v.to_dict()
    if isinstance(v, frozenset | set):
        return sorted(enc(x) for x in v)
    if isinstance(v, tuple | list):
        return [enc(x) for x in v]
    if isinstance(v, Mapping):
        return {str(enc(k)): enc(x) for k, x in v.items()}
    return v


def _plain_dict(obj: Any) -> dict[str, Any]:
    return {f.name: enc(getattr(obj, f.name)) for f in fields(obj)}


@dataclass(frozen=True, slots=True)
class _ExcursionFacts:
    """The facts of one excursion, shared by the summary and the deviation's evidence."""

    tag: str
    room: str
    kind: ExcursionKind
    production_state: ProductionState
    start_us: int
    duration_us: int
    end_us: int | None = None
    peak: float | None = None
    grade: str | None = None
    equipment: str | None = None
    excursion_id: str | None = None
    limit_set_id: str | None = None
    limit_set_version: int | None = None
    alarm_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return _plain_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`."""
        d = dict(data)
        d["kind"] = ExcursionKind(d["kind"])
        d["production_state"] = ProductionState(d["production_state"])
        d["alarm_ids"] = tuple(d.get("alarm_ids", ()))
        return cls(**d)


@dataclass(frozen=True, slots=True)
class ExcursionSummary(_ExcursionFacts):
    """What limit evaluation (or the gap ledger) reports about one excursion.

    ``duration_us`` is the whole duration if ended, else the duration so far; call the
    auto-raise decision again as an open excursion grows, to see whether the proposal
    escalates. ``continuous_monitoring`` marks tags the site monitors continuously
    (e.g. Grade A particles, critical DP).
    """

    continuous_monitoring: bool = False

    def __post_init__(self) -> None:
        if self.duration_us < 0:
            raise ValueError("duration must not be negative")
        if self.end_us is not None and self.end_us < self.start_us:
            raise ValueError("excursion ends before it starts")


@dataclass(frozen=True, slots=True)
class Evidence(_ExcursionFacts):
    """The facts a deviation rests on (copied from the excursion summary when raised)."""

    @classmethod
    def from_summary(cls, s: ExcursionSummary) -> Evidence:
        """Evidence recorded from an excursion summary (every fact but the monitoring mark)."""
        return cls(**{f.name: getattr(s, f.name) for f in fields(_ExcursionFacts)})


@dataclass(frozen=True, slots=True)
class Deviation:
    """A deviation record. ``version`` starts at 1 and grows by one with every action."""

    id: str
    title: str
    source: Source
    status: Status
    proposed_classification: Classification
    discovered_us: int
    raised_by: str
    report_due_us: int
    close_due_us: int
    notify_at_once: bool = False
    proposal_rule: str | None = None  # the classification rule that proposed the class
    final_classification: Classification | None = None
    classification_rationale: str | None = None  # needed when final differs from proposed
    description: str = ""
    evidence: Evidence | None = None
    affected_batch_ids: tuple[str, ...] = ()
    investigator: str | None = None
    investigation_started_us: int | None = None
    investigation_note: str | None = None
    impact_assessment: str | None = None
    root_cause: str | None = None
    capa_ref: str | None = None
    cancel_reason: str | None = None
    closed_by: str | None = None
    closed_us: int | None = None
    linked_deviation_ids: tuple[str, ...] = ()
    linked_excursion_ids: tuple[str, ...] = ()
    version: int = 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return _plain_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Deviation:
        """Inverse of :meth:`to_dict`."""
        d = dict(data)
        d["source"] = Source(d["source"])
        d["status"] = Status(d["status"])
        d["proposed_classification"] = Classification(d["proposed_classification"])
        if d.get("final_classification") is not None:
            d["final_classification"] = Classification(d["final_classification"])
        if d.get("evidence") is not None:
            d["evidence"] = Evidence.from_dict(d["evidence"])
        for k in ("affected_batch_ids", "linked_deviation_ids", "linked_excursion_ids"):
            d[k] = tuple(d.get(k, ()))
        return cls(**d)


@dataclass(frozen=True, slots=True)
class Transition:
    """One action on a deviation, for the audit trail.

    ``changes`` maps each changed field to ``(old, new)`` in JSON form; ``version`` is the
    deviation's version after the action. ``from_status`` is None for ``raise``.
    """

    deviation_id: str
    action: Action
    from_status: Status | None
    to_status: Status
    actor: str
    at_us: int
    version: int
    reason: str = ""
    changes: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return _plain_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Transition:
        """Inverse of :meth:`to_dict`."""
        d = dict(data)
        d["action"] = Action(d["action"])
        d["from_status"] = None if d["from_status"] is None else Status(d["from_status"])
        d["to_status"] = Status(d["to_status"])
        d["changes"] = {k: (v[0], v[1]) for k, v in d.get("changes", {}).items()}
        return cls(**d)

    def audit_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``audit.trail.AuditTrail.append`` (record type ``deviation``)."""
        return {
            "actor": self.actor,
            "action": f"deviation.{self.action.value}",
            "record_type": "deviation",
            "record_id": self.deviation_id,
            "reason": self.reason,
            "old": {k: v[0] for k, v in self.changes.items()} if self.from_status else None,
            "new": {k: v[1] for k, v in self.changes.items()},
            "ts_us": self.at_us,
        }
