"""Auto-raise decision: from an excursion summary and the batches, is a deviation raised,
with which class (and rule), which batches does it affect, and when is it due?

A batch is affected when it was in progress during the excursion (half-open intervals:
a batch that ended when the excursion started, or started when it ended, is not) and it
ran in the excursion's room or on its equipment (either is enough).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gmp_edge.deviations.batch import Batch
from gmp_edge.deviations.lifecycle import raise_deviation
from gmp_edge.deviations.model import (
    SYSTEM,
    Classification,
    Deviation,
    Evidence,
    ExcursionKind,
    ExcursionSummary,
    InvalidValue,
    Source,
    Transition,
    enc,
)
from gmp_edge.deviations.rules import (
    DEFAULT_RULES,
    ClassificationRule,
    DueDates,
    DuePolicy,
    classify,
    due_dates,
)


def affected_batches(
    summary: ExcursionSummary | Evidence, batches: Iterable[Batch]
) -> tuple[Batch, ...]:
    """Batches in progress during the excursion in its room or on its equipment, by id."""
    hit = [
        b
        for b in batches
        if b.overlaps(summary.start_us, summary.end_us)
        and b.uses(room=summary.room, equipment=summary.equipment)
    ]
    return tuple(sorted(hit, key=lambda b: b.id))


def concerned_batch_ids(dev: Deviation, candidates: Iterable[Batch]) -> list[str]:
    """Every batch ``dev`` concerns: those linked when it was raised or amended, and those of
    ``candidates`` in progress in its room or on its equipment during its excursion (a batch
    registered after the fact, back-dated, did not exist to be linked)."""
    ids = set(dev.affected_batch_ids)
    if dev.evidence is not None:
        ids |= {b.id for b in affected_batches(dev.evidence, candidates)}
    return sorted(ids)


@dataclass(frozen=True, slots=True)
class RaiseDecision:
    """Whether to raise a deviation for an excursion, and everything needed to draft it."""

    raise_deviation: bool
    classification: Classification | None
    rule_name: str | None
    source: Source
    affected_batch_ids: tuple[str, ...]
    due: DueDates | None  # None when no deviation is raised

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "raise_deviation": self.raise_deviation,
            "classification": enc(self.classification),
            "rule_name": self.rule_name,
            "source": self.source.value,
            "affected_batch_ids": list(self.affected_batch_ids),
            "due": None if self.due is None else self.due.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RaiseDecision:
        """Inverse of :meth:`to_dict`."""
        c = data["classification"]
        return cls(
            raise_deviation=data["raise_deviation"],
            classification=None if c is None else Classification(c),
            rule_name=data["rule_name"],
            source=Source(data["source"]),
            affected_batch_ids=tuple(data["affected_batch_ids"]),
            due=None if data["due"] is None else DueDates.from_dict(data["due"]),
        )


def decide(
    summary: ExcursionSummary,
    batches: Iterable[Batch],
    discovered_us: int,
    *,
    rules: Sequence[ClassificationRule] = DEFAULT_RULES,
    due_policy: DuePolicy | None = None,
) -> RaiseDecision:
    """The auto-raise decision for one excursion (pure).

    ``batches`` may be all known batches; only affected ones are kept. "Batch in
    progress" for the rules means at least one affected batch. Due dates count from
    ``discovered_us`` (when the system detected it).
    """
    affected = affected_batches(summary, batches)
    proposal = classify(summary, bool(affected), rules)
    source = (
        Source.MONITORING_LOSS
        if summary.kind is ExcursionKind.MONITORING_LOSS
        else Source.EXCURSION
    )
    due = (
        due_dates(proposal.classification, discovered_us, due_policy)
        if proposal.classification is not None
        else None
    )
    return RaiseDecision(
        raise_deviation=proposal.raise_deviation,
        classification=proposal.classification,
        rule_name=proposal.rule_name,
        source=source,
        affected_batch_ids=tuple(b.id for b in affected),
        due=due,
    )


def draft(
    decision: RaiseDecision,
    summary: ExcursionSummary,
    *,
    deviation_id: str,
    title: str,
    discovered_us: int,
    actor: str = SYSTEM,
) -> tuple[Deviation, Transition]:
    """Open the deviation a positive decision calls for (evidence from the summary)."""
    if not decision.raise_deviation or decision.classification is None:
        raise InvalidValue(f"no deviation to raise for {summary.tag} (rule {decision.rule_name})")
    return raise_deviation(
        deviation_id=deviation_id,
        title=title,
        source=decision.source,
        proposed_classification=decision.classification,
        proposal_rule=decision.rule_name,
        discovered_us=discovered_us,
        actor=actor,
        due=decision.due,
        evidence=Evidence.from_summary(summary),
        affected_batch_ids=decision.affected_batch_ids,
        linked_excursion_ids=(summary.excursion_id,) if summary.excursion_id else (),
    )


def escalates(current: Classification, proposed: Classification | None) -> bool:
    """True if a new proposal (e.g. the excursion grew longer) is more severe than now."""
    return proposed is not None and proposed.rank > current.rank
