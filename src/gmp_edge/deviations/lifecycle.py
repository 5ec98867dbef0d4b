"""Deviation lifecycle: open -> under investigation -> closed (or cancelled), as data.

Every action takes the version the caller read (``expected_version``) and returns
``(new_deviation, transition)``; the input is never changed. Refusals raise, in this
order: :class:`StaleVersion` (someone else changed it first), :class:`IllegalDeviationTransition`
(not allowed in this status), :class:`MissingDeviationFields` (every missing field listed at
once), :class:`InvalidValue`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any, TypedDict, Unpack

from gmp_edge.deviations.model import (
    CAPA_REQUIRED,
    Action,
    Classification,
    Deviation,
    Evidence,
    IllegalDeviationTransition,
    InvalidValue,
    MissingDeviationFields,
    Source,
    StaleVersion,
    Status,
    Transition,
)
from gmp_edge.deviations.rules import DueDates, DuePolicy, due_dates

A = Action
St = Status

#: (status, action) -> next status. Closed and cancelled are final.
LIFECYCLE: dict[tuple[Status, Action], Status] = {
    (St.OPEN, A.START_INVESTIGATION): St.UNDER_INVESTIGATION,
    (St.OPEN, A.AMEND): St.OPEN,
    (St.OPEN, A.CANCEL): St.CANCELLED,
    (St.UNDER_INVESTIGATION, A.AMEND): St.UNDER_INVESTIGATION,
    (St.UNDER_INVESTIGATION, A.CLOSE): St.CLOSED,
    (St.UNDER_INVESTIGATION, A.CANCEL): St.CANCELLED,
}

#: Fields every action needs (conditional ones are listed in the action's docstring).
REQUIRED: dict[Action, tuple[str, ...]] = {
    A.RAISE: ("deviation_id", "title", "actor", "proposed_classification"),
    A.START_INVESTIGATION: ("actor", "investigator", "note"),
    A.AMEND: ("actor", "reason"),
    A.CLOSE: ("actor", "impact_assessment", "root_cause", "final_classification"),
    A.CANCEL: ("actor", "reason"),
}

#: Fields ``amend`` may change while the deviation is open or under investigation.
AMENDABLE = frozenset(
    {
        "title",
        "description",
        "proposed_classification",
        "proposal_rule",
        "evidence",
        "affected_batch_ids",
        "impact_assessment",
        "root_cause",
        "capa_ref",
        "linked_deviation_ids",
        "linked_excursion_ids",
        "report_due_us",
        "close_due_us",
        "notify_at_once",
        "investigation_note",
    }
)

_TUPLE_FIELDS = ("affected_batch_ids", "linked_deviation_ids", "linked_excursion_ids")


def _blank(v: object) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def _missing(names: Iterable[str], values: Mapping[str, object]) -> list[str]:
    return [n for n in names if _blank(values.get(n))]


def _changes(old: Deviation | None, new: Deviation) -> dict[str, tuple[Any, Any]]:
    before = old.to_dict() if old is not None else {}
    after = new.to_dict()
    return {
        k: (before.get(k), v)
        for k, v in after.items()
        if k != "version" and before.get(k) != v and not (old is None and v in (None, "", []))
    }


def _check(dev: Deviation, expected_version: int, action: Action) -> Status:
    if expected_version != dev.version:
        raise StaleVersion(dev.id, expected_version, dev.version)
    target = LIFECYCLE.get((dev.status, action))
    if target is None:
        allowed = ", ".join(s for (s, a) in LIFECYCLE if a == action) or "no status"
        raise IllegalDeviationTransition(dev.id, dev.status, action, allowed)
    return target


def _apply(
    dev: Deviation,
    action: Action,
    target: Status,
    actor: str,
    at_us: int,
    reason: str,
    updates: Mapping[str, Any],
) -> tuple[Deviation, Transition]:
    new = replace(dev, **updates, status=target, version=dev.version + 1)
    t = Transition(
        dev.id, action, dev.status, target, actor, at_us, new.version, reason, _changes(dev, new)
    )
    return new, t


def allowed_actions(status: Status) -> tuple[Action, ...]:
    """Actions allowed in ``status`` (``raise`` creates, so it is never listed)."""
    return tuple(a for (s, a) in LIFECYCLE if s == status)


def raise_deviation(
    *,
    deviation_id: str | None,
    title: str | None,
    source: Source,
    proposed_classification: Classification | None,
    discovered_us: int,
    actor: str | None,
    due: DueDates | None = None,
    due_policy: DuePolicy | None = None,
    proposal_rule: str | None = None,
    description: str = "",
    evidence: Evidence | None = None,
    affected_batch_ids: Iterable[str] = (),
    linked_deviation_ids: Iterable[str] = (),
    linked_excursion_ids: Iterable[str] = (),
) -> tuple[Deviation, Transition]:
    """Open a deviation (version 1, status open).

    Needs id, title, actor and a proposed classification; an excursion or monitoring-loss
    deviation also needs its evidence, a manual one a description. Due dates come from
    ``due`` if given, else from ``due_policy`` (defaults: 24 h / 30 d / notify if critical).
    """
    values: dict[str, object] = {
        "deviation_id": deviation_id,
        "title": title,
        "actor": actor,
        "proposed_classification": proposed_classification,
        "evidence": evidence,
        "description": description,
    }
    missing = _missing(REQUIRED[A.RAISE], values)
    missing += _missing(["description"] if source is Source.MANUAL else ["evidence"], values)
    if missing:
        raise MissingDeviationFields(deviation_id or "(new)", A.RAISE, missing)
    assert deviation_id and title and actor and proposed_classification
    d = due or due_dates(proposed_classification, discovered_us, due_policy)
    dev = Deviation(
        id=deviation_id,
        title=title,
        source=source,
        status=St.OPEN,
        proposed_classification=proposed_classification,
        proposal_rule=proposal_rule,
        discovered_us=discovered_us,
        raised_by=actor,
        report_due_us=d.report_due_us,
        close_due_us=d.close_due_us,
        notify_at_once=d.notify_at_once,
        description=description,
        evidence=evidence,
        affected_batch_ids=tuple(affected_batch_ids),
        linked_deviation_ids=tuple(linked_deviation_ids),
        linked_excursion_ids=tuple(linked_excursion_ids),
    )
    t = Transition(dev.id, A.RAISE, None, St.OPEN, actor, discovered_us, 1, "", _changes(None, dev))
    return dev, t


def start_investigation(
    dev: Deviation,
    expected_version: int,
    *,
    actor: str | None,
    at_us: int,
    investigator: str | None,
    note: str | None,
) -> tuple[Deviation, Transition]:
    """Open -> under investigation. Needs actor, investigator and a note."""
    target = _check(dev, expected_version, A.START_INVESTIGATION)
    values = {"actor": actor, "investigator": investigator, "note": note}
    missing = _missing(REQUIRED[A.START_INVESTIGATION], values)
    if missing:
        raise MissingDeviationFields(dev.id, A.START_INVESTIGATION, missing)
    assert actor and note
    updates = {
        "investigator": investigator,
        "investigation_started_us": at_us,
        "investigation_note": note,
    }
    return _apply(dev, A.START_INVESTIGATION, target, actor, at_us, note, updates)


def amend(
    dev: Deviation,
    expected_version: int,
    *,
    actor: str | None,
    at_us: int,
    reason: str | None,
    changes: Mapping[str, Any],
) -> tuple[Deviation, Transition]:
    """Change fields of an open or under-investigation deviation, with a reason.

    Allowed fields: :data:`AMENDABLE`. Refused: unknown fields, or no actual change.
    """
    target = _check(dev, expected_version, A.AMEND)
    missing = _missing(REQUIRED[A.AMEND], {"actor": actor, "reason": reason})
    if missing:
        raise MissingDeviationFields(dev.id, A.AMEND, missing)
    assert actor and reason
    unknown = sorted(set(changes) - AMENDABLE)
    if unknown:
        raise InvalidValue(f"deviation {dev.id}: cannot amend {', '.join(unknown)}")
    updates = dict(changes)
    for k in _TUPLE_FIELDS:
        if k in updates:
            updates[k] = tuple(updates[k])
    if "proposed_classification" in updates:
        updates["proposed_classification"] = Classification(updates["proposed_classification"])
    if "evidence" in updates and not isinstance(updates["evidence"], Evidence | None):
        raise InvalidValue(f"deviation {dev.id}: evidence must be an Evidence")
    new, t = _apply(dev, A.AMEND, target, actor, at_us, reason, updates)
    if not t.changes:
        raise InvalidValue(f"deviation {dev.id}: amend changes nothing")
    return new, t


class Findings(TypedDict, total=False):
    """What a closure may record besides the final classification (each one given here
    overrides what ``amend`` recorded before); ``note`` is the transition's reason."""

    impact_assessment: str | None
    root_cause: str | None
    capa_ref: str | None
    classification_rationale: str | None
    note: str


#: The closure fields that fall back to what the deviation already records.
_CLOSE_FIELDS = (
    "impact_assessment",
    "root_cause",
    "final_classification",
    "capa_ref",
    "classification_rationale",
)


def close(
    dev: Deviation,
    expected_version: int,
    *,
    actor: str | None,
    at_us: int,
    final_classification: Classification | None = None,
    **findings: Unpack[Findings],
) -> tuple[Deviation, Transition]:
    """Under investigation -> closed.

    Needs impact assessment, root cause and final classification (given here or already
    recorded by ``amend``); a CAPA reference if the final class is major or critical; a
    classification rationale if the final class differs from the proposed one.
    """
    target = _check(dev, expected_version, A.CLOSE)
    given: dict[str, Any] = {**findings, "final_classification": final_classification}
    eff = {"actor": actor, **{k: given.get(k) or getattr(dev, k) for k in _CLOSE_FIELDS}}
    needed = list(REQUIRED[A.CLOSE])
    final = eff["final_classification"]
    if final in CAPA_REQUIRED:
        needed.append("capa_ref")
    if final is not None and final != dev.proposed_classification:
        needed.append("classification_rationale")
    missing = _missing(needed, eff)
    if missing:
        raise MissingDeviationFields(dev.id, A.CLOSE, missing)
    assert actor
    updates = {k: v for k, v in eff.items() if k != "actor"}
    updates["final_classification"] = Classification(final) if final else None
    return _apply(
        dev,
        A.CLOSE,
        target,
        actor,
        at_us,
        findings.get("note", ""),
        {**updates, "closed_by": actor, "closed_us": at_us},
    )


def cancel(
    dev: Deviation, expected_version: int, *, actor: str | None, at_us: int, reason: str | None
) -> tuple[Deviation, Transition]:
    """Open or under investigation -> cancelled (e.g. raised in error). Needs a reason."""
    target = _check(dev, expected_version, A.CANCEL)
    missing = _missing(REQUIRED[A.CANCEL], {"actor": actor, "reason": reason})
    if missing:
        raise MissingDeviationFields(dev.id, A.CANCEL, missing)
    assert actor and reason
    return _apply(dev, A.CANCEL, target, actor, at_us, reason, {"cancel_reason": reason})
