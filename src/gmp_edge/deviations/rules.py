"""Deviation classification rules as data (the site's SOP), and due dates.

A rule is a set of conditions (each None = "any") and an outcome (a class, or None for
"no deviation"). Rules are tried in order; the first match wins and its name is reported
with the proposal, so a reviewer can see why. Put longer-duration rules before shorter
ones so that durations escalate. The defaults are an example for an OSD site and are
meant to be replaced by configuration.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from gmp_edge.deviations.model import (
    Classification,
    ExcursionKind,
    ExcursionSummary,
    ProductionState,
    enc,
)

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US


@dataclass(frozen=True, slots=True)
class ClassificationRule:
    """If every given condition holds, propose ``classification`` (None = no deviation)."""

    name: str
    classification: Classification | None
    kinds: frozenset[ExcursionKind] | None = None
    grades: frozenset[str] | None = None
    production_states: frozenset[ProductionState] | None = None
    batch_in_progress: bool | None = None
    continuous_monitoring: bool | None = None
    min_duration_us: int | None = None

    def matches(self, s: ExcursionSummary, batch_in_progress: bool) -> bool:
        """True if the excursion (with or without an affected batch) meets every condition."""
        return (
            (self.kinds is None or s.kind in self.kinds)
            and (self.grades is None or s.grade in self.grades)
            and (self.production_states is None or s.production_state in self.production_states)
            and (self.batch_in_progress is None or self.batch_in_progress == batch_in_progress)
            and (
                self.continuous_monitoring is None
                or self.continuous_monitoring == s.continuous_monitoring
            )
            and (self.min_duration_us is None or s.duration_us >= self.min_duration_us)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (sets as sorted lists)."""
        return {
            "name": self.name,
            "classification": enc(self.classification),
            "kinds": enc(self.kinds),
            "grades": enc(self.grades),
            "production_states": enc(self.production_states),
            "batch_in_progress": self.batch_in_progress,
            "continuous_monitoring": self.continuous_monitoring,
            "min_duration_us": self.min_duration_us,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClassificationRule:
        """Inverse of :meth:`to_dict`; absent conditions mean "any"."""

        def opt_set(key: str, conv: Any) -> Any:
            v = data.get(key)
            return None if v is None else frozenset(conv(x) for x in v)

        c = data.get("classification")
        return cls(
            name=data["name"],
            classification=None if c is None else Classification(c),
            kinds=opt_set("kinds", ExcursionKind),
            grades=opt_set("grades", str),
            production_states=opt_set("production_states", ProductionState),
            batch_in_progress=data.get("batch_in_progress"),
            continuous_monitoring=data.get("continuous_monitoring"),
            min_duration_us=data.get("min_duration_us"),
        )


K = ExcursionKind
C = Classification
IN_OPERATION = frozenset({ProductionState.IN_OPERATION})

DEFAULT_RULES: tuple[ClassificationRule, ...] = (
    ClassificationRule("alert only: no deviation", None, kinds=frozenset({K.ALERT})),
    ClassificationRule(
        "action limit, grade A/B in operation",
        C.CRITICAL,
        kinds=frozenset({K.ACTION}),
        grades=frozenset({"A", "B"}),
        production_states=IN_OPERATION,
    ),
    ClassificationRule(
        "action limit >= 4 h with batch in progress",
        C.CRITICAL,
        kinds=frozenset({K.ACTION}),
        batch_in_progress=True,
        min_duration_us=4 * HOUR_US,
    ),
    ClassificationRule(
        "action limit with batch in progress",
        C.MAJOR,
        kinds=frozenset({K.ACTION}),
        batch_in_progress=True,
    ),
    ClassificationRule("action limit, no batch affected", C.MINOR, kinds=frozenset({K.ACTION})),
    ClassificationRule(
        "monitoring loss of continuous-monitoring tag in operation",
        C.MAJOR,
        kinds=frozenset({K.MONITORING_LOSS}),
        continuous_monitoring=True,
        production_states=IN_OPERATION,
    ),
    ClassificationRule(
        "monitoring loss >= 1 h in operation",
        C.MINOR,
        kinds=frozenset({K.MONITORING_LOSS}),
        production_states=IN_OPERATION,
        min_duration_us=HOUR_US,
    ),
    ClassificationRule(
        "other monitoring loss: gap recorded, no deviation",
        None,
        kinds=frozenset({K.MONITORING_LOSS}),
    ),
)


@dataclass(frozen=True, slots=True)
class Proposal:
    """The outcome of classification: raise or not, which class, and which rule said so."""

    raise_deviation: bool
    classification: Classification | None
    rule_name: str | None  # None: no rule matched

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "raise_deviation": self.raise_deviation,
            "classification": enc(self.classification),
            "rule_name": self.rule_name,
        }


def classify(
    summary: ExcursionSummary,
    batch_in_progress: bool,
    rules: Sequence[ClassificationRule] = DEFAULT_RULES,
) -> Proposal:
    """First matching rule wins; no match means no deviation (end rule sets with catch-alls)."""
    for rule in rules:
        if rule.matches(summary, batch_in_progress):
            return Proposal(rule.classification is not None, rule.classification, rule.name)
    return Proposal(False, None, None)


def rules_from_dicts(items: Iterable[Mapping[str, Any]]) -> tuple[ClassificationRule, ...]:
    """A rule set from configuration; rule names must be unique (they are reported)."""
    rules = tuple(ClassificationRule.from_dict(d) for d in items)
    names = [r.name for r in rules]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate rule names: {', '.join(dupes)}")
    return rules


def _per_class(us: int) -> dict[Classification, int]:
    return dict.fromkeys(Classification, us)


@dataclass(frozen=True, slots=True)
class DuePolicy:
    """Site rules for deviation due dates (calendar time from discovery, per class).

    Defaults follow industry convention (no regulation fixes them): report within 24 h,
    close within 30 days, critical -> notify QA at once.
    """

    report_within_us: Mapping[Classification, int] = field(
        default_factory=lambda: _per_class(DAY_US)
    )
    close_within_us: Mapping[Classification, int] = field(
        default_factory=lambda: _per_class(30 * DAY_US)
    )
    notify_at_once: frozenset[Classification] = frozenset({Classification.CRITICAL})

    def __post_init__(self) -> None:
        for name in ("report_within_us", "close_within_us"):
            table = getattr(self, name)
            missing = [c.value for c in Classification if c not in table]
            if missing:
                raise ValueError(f"{name} has no entry for {', '.join(missing)}")
            if any(v <= 0 for v in table.values()):
                raise ValueError(f"{name} must be positive")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "report_within_us": enc(self.report_within_us),
            "close_within_us": enc(self.close_within_us),
            "notify_at_once": enc(self.notify_at_once),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DuePolicy:
        """Inverse of :meth:`to_dict`."""
        return cls(
            report_within_us={
                Classification(k): int(v) for k, v in data["report_within_us"].items()
            },
            close_within_us={Classification(k): int(v) for k, v in data["close_within_us"].items()},
            notify_at_once=frozenset(Classification(c) for c in data["notify_at_once"]),
        )


@dataclass(frozen=True, slots=True)
class DueDates:
    """When the deviation must be reported and closed, and whether to notify QA now."""

    report_due_us: int
    close_due_us: int
    notify_at_once: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (every field is a plain int or bool)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DueDates:
        """Inverse of :meth:`to_dict`."""
        return cls(int(data["report_due_us"]), int(data["close_due_us"]), data["notify_at_once"])


def due_dates(
    classification: Classification, discovered_us: int, policy: DuePolicy | None = None
) -> DueDates:
    """Due dates for a deviation of ``classification`` discovered at ``discovered_us``."""
    p = policy or DuePolicy()
    return DueDates(
        report_due_us=discovered_us + p.report_within_us[classification],
        close_due_us=discovered_us + p.close_within_us[classification],
        notify_at_once=classification in p.notify_at_once,
    )
