"""Auto-raise decision: affected batch selection at the edges (time, room vs equipment,
open intervals), the decision end to end, drafting, escalation check, and the batch
model."""

from __future__ import annotations

import json

import pytest

from gmp_edge.deviations.autoraise import (
    RaiseDecision,
    affected_batches,
    concerned_batch_ids,
    decide,
    draft,
    escalates,
)
from gmp_edge.deviations.batch import Batch
from gmp_edge.deviations.model import (
    Classification,
    ExcursionKind,
    ExcursionSummary,
    InvalidValue,
    ProductionState,
    Source,
    Status,
)
from gmp_edge.deviations.rules import DAY_US, HOUR_US, ClassificationRule, DueDates, DuePolicy

T0 = 1_790_000_000_000_000
MIN = 60_000_000
C = Classification


def excursion(
    start=T0,
    end=T0 + 10 * MIN,
    room="R201",
    equipment="PRESS-1",
    kind=ExcursionKind.ACTION,
    grade="D",
    state=ProductionState.IN_OPERATION,
):
    return ExcursionSummary(
        tag=f"site/compression/{room}/p_0_5",
        room=room,
        kind=kind,
        start_us=start,
        end_us=end,
        duration_us=(end or T0 + 30 * MIN) - start,
        production_state=state,
        peak=4100.0,
        grade=grade,
        equipment=equipment,
        excursion_id="EX-1",
        limit_set_id="LS-R201",
        limit_set_version=2,
        alarm_ids=("AL-1", "AL-2"),
    )


def batch(start, end, rooms=("R201",), equipment=("PRESS-1",), bid="B-1"):
    return Batch(
        id=bid,
        product="Paracetamol 500 mg",
        equipment=tuple(equipment),
        rooms=tuple(rooms),
        start_us=start,
        end_us=end,
    )


E_START, E_END = T0, T0 + 10 * MIN

SELECTION = [
    # (batch start, batch end, rooms, equipment, excursion end, affected?)
    (E_START - HOUR_US, E_START - 1, ("R201",), (), E_END, False),  # ended before
    (E_START - HOUR_US, E_START, ("R201",), (), E_END, False),  # ended as it started
    (E_START - HOUR_US, E_START + 1, ("R201",), (), E_END, True),  # overlaps by 1 us
    (E_START - HOUR_US, None, ("R201",), (), E_END, True),  # still running
    (E_START + MIN, E_START + 2 * MIN, ("R201",), (), E_END, True),  # inside
    (E_END - 1, None, ("R201",), (), E_END, True),  # started just before it ended
    (E_END, None, ("R201",), (), E_END, False),  # started as it ended
    (E_END + MIN, None, ("R201",), (), E_END, False),  # started after
    (E_END + MIN, None, ("R201",), (), None, True),  # started during an ongoing excursion
    (E_START - HOUR_US, None, ("R202",), ("PRESS-1",), E_END, True),  # equipment match only
    (E_START - HOUR_US, None, ("R201",), ("PRESS-2",), E_END, True),  # room match only
    (E_START - HOUR_US, None, ("R202",), ("PRESS-2",), E_END, False),  # neither
    (E_START - HOUR_US, None, (), (), E_END, False),
]


@pytest.mark.parametrize(("b_start", "b_end", "rooms", "equipment", "e_end", "hit"), SELECTION)
def test_affected_batch_selection(b_start, b_end, rooms, equipment, e_end, hit):
    b = batch(b_start, b_end, rooms, equipment)
    assert affected_batches(excursion(end=e_end), [b]) == ((b,) if hit else ())


@pytest.mark.parametrize(
    ("b_start", "b_end", "hit"),
    [(T0 - 1, T0 + 1, True), (T0, None, True), (T0 + 1, None, False), (T0 - 5, T0, False)],
)
def test_instant_excursion(b_start, b_end, hit):
    s = excursion(start=T0, end=T0)
    assert bool(affected_batches(s, [batch(b_start, b_end)])) is hit


def test_excursion_without_equipment_matches_by_room_only():
    s = excursion(equipment=None)
    on_press = batch(T0 - HOUR_US, None, rooms=("R202",), equipment=("PRESS-1",))
    assert affected_batches(s, [on_press]) == ()


def test_affected_batches_sorted_and_filtered():
    bs = [
        batch(T0 - HOUR_US, None, bid="B-9"),
        batch(T0 - HOUR_US, T0 - 1, bid="B-2"),
        batch(T0 - HOUR_US, None, bid="B-3", rooms=("R202",), equipment=("PRESS-1",)),
    ]
    assert [b.id for b in affected_batches(excursion(), bs)] == ["B-3", "B-9"]


def test_decision_action_with_batch_is_major():
    d = decide(excursion(), [batch(T0 - HOUR_US, None, bid="B-7")], T0 + MIN)
    assert d == RaiseDecision(
        raise_deviation=True,
        classification=C.MAJOR,
        rule_name="action limit with batch in progress",
        source=Source.EXCURSION,
        affected_batch_ids=("B-7",),
        due=DueDates(T0 + MIN + DAY_US, T0 + MIN + 30 * DAY_US, False),
    )


def test_decision_batch_elsewhere_does_not_count_as_in_progress():
    d = decide(excursion(), [batch(T0 - HOUR_US, None, rooms=("R900",), equipment=())], T0)
    assert (d.classification, d.rule_name, d.affected_batch_ids) == (
        C.MINOR,
        "action limit, no batch affected",
        (),
    )


def test_decision_alert_raises_nothing():
    d = decide(excursion(kind=ExcursionKind.ALERT), [batch(T0 - HOUR_US, None)], T0)
    assert (d.raise_deviation, d.classification, d.due) == (False, None, None)
    assert d.rule_name == "alert only: no deviation"
    assert d.affected_batch_ids == ("B-1",)  # still reported, for review


def test_decision_monitoring_loss_source_and_critical_notify():
    s = excursion(kind=ExcursionKind.MONITORING_LOSS)
    rules = [ClassificationRule("all losses critical", C.CRITICAL)]
    d = decide(s, [], T0, rules=rules, due_policy=DuePolicy())
    assert d.due is not None
    assert (d.source, d.classification, d.due.notify_at_once) == (
        Source.MONITORING_LOSS,
        C.CRITICAL,
        True,
    )


def test_draft_opens_deviation_with_evidence():
    s = excursion()
    d = decide(s, [batch(T0 - HOUR_US, None, bid="B-7")], T0 + MIN)
    dev, t = draft(
        d,
        s,
        deviation_id="DEV-10",
        title="Particles 0.5 um over action in R201",
        discovered_us=T0 + MIN,
    )
    assert (dev.status, dev.version, dev.proposed_classification) == (Status.OPEN, 1, C.MAJOR)
    assert dev.proposal_rule == "action limit with batch in progress"
    assert dev.affected_batch_ids == ("B-7",) and dev.linked_excursion_ids == ("EX-1",)
    ev = dev.evidence
    assert ev is not None
    assert (ev.tag, ev.room, ev.equipment, ev.start_us, ev.end_us, ev.peak) == (
        s.tag,
        "R201",
        "PRESS-1",
        T0,
        T0 + 10 * MIN,
        4100.0,
    )
    assert (ev.limit_set_id, ev.limit_set_version, ev.alarm_ids) == ("LS-R201", 2, ("AL-1", "AL-2"))
    assert dev.report_due_us == T0 + MIN + DAY_US and t.actor == "system"


def test_draft_refused_without_positive_decision():
    s = excursion(kind=ExcursionKind.ALERT)
    with pytest.raises(InvalidValue):
        draft(decide(s, [], T0), s, deviation_id="D", title="t", discovered_us=T0)


def test_ongoing_excursion_escalates_with_duration():
    b = [batch(T0 - HOUR_US, None)]
    early = decide(excursion(end=None), b, T0)
    longer = excursion(end=None)
    longer = ExcursionSummary.from_dict(longer.to_dict() | {"duration_us": 4 * HOUR_US})
    late = decide(longer, b, T0)
    assert (early.classification, late.classification) == (C.MAJOR, C.CRITICAL)
    assert early.classification is not None
    assert escalates(early.classification, late.classification)
    assert not escalates(C.CRITICAL, C.MAJOR)
    assert not escalates(C.MAJOR, C.MAJOR)
    assert not escalates(C.MINOR, None)


def test_round_trips():
    s = excursion(end=None)
    assert ExcursionSummary.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    b = batch(T0, None)
    assert Batch.from_dict(json.loads(json.dumps(b.to_dict()))) == b
    for d in (decide(excursion(), [b], T0), decide(excursion(kind=ExcursionKind.ALERT), [], T0)):
        assert RaiseDecision.from_dict(json.loads(json.dumps(d.to_dict()))) == d


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [({"start_us": T0, "end_us": T0 - 1}, ValueError)],
)
def test_batch_validation(kwargs, exc):
    with pytest.raises(exc):
        Batch(id="B", product="p", equipment=(), rooms=(), **kwargs)


def test_summary_validation():
    with pytest.raises(ValueError):
        excursion(start=T0, end=T0 - 1)
    with pytest.raises(ValueError):
        ExcursionSummary(
            tag="t",
            room="r",
            kind=ExcursionKind.ACTION,
            start_us=T0,
            duration_us=-1,
            production_state=ProductionState.AT_REST,
        )


@pytest.mark.parametrize(
    ("t", "in_progress"),
    [(T0 - 1, False), (T0, True), (T0 + HOUR_US - 1, True), (T0 + HOUR_US, False)],
)
def test_batch_in_progress_at(t, in_progress):
    assert batch(T0, T0 + HOUR_US).in_progress_at(t) is in_progress


def test_the_batches_a_deviation_concerns_include_those_registered_afterwards():
    # raised while B-1 ran; B-LATE was registered afterwards, back-dated over the excursion
    s = excursion()
    running = batch(T0 - HOUR_US, None, bid="B-1")
    dev, _ = draft(decide(s, [running], T0 + MIN), s, deviation_id="D", title="t", discovered_us=T0)
    assert dev.affected_batch_ids == ("B-1",)
    late = batch(T0 - MIN, T0 + HOUR_US, bid="B-LATE")
    elsewhere = batch(T0 - MIN, T0 + HOUR_US, rooms=("R900",), equipment=(), bid="B-X")
    before = batch(T0 - 2 * HOUR_US, T0 - HOUR_US, bid="B-0")
    assert concerned_batch_ids(dev, [late, elsewhere, before, running]) == ["B-1", "B-LATE"]
