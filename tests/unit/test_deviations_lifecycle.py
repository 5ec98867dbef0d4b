"""Deviation lifecycle: every (status, action) pair, required fields per action (all
missing ones listed, nothing changed), optimistic concurrency, transition records and
JSON round trips."""

from __future__ import annotations

import json

import pytest

from gmp_edge.deviations import lifecycle as lc
from gmp_edge.deviations.model import (
    Action,
    Classification,
    Deviation,
    Evidence,
    ExcursionKind,
    IllegalDeviationTransition,
    InvalidValue,
    MissingDeviationFields,
    ProductionState,
    Source,
    StaleVersion,
    Status,
    Transition,
)
from gmp_edge.deviations.rules import DAY_US

T0 = 1_790_000_000_000_000
C = Classification
St = Status
A = Action

EVIDENCE = Evidence(
    tag="site/granulation/R101/dp",
    room="R101",
    kind=ExcursionKind.ACTION,
    production_state=ProductionState.IN_OPERATION,
    start_us=T0 - 600_000_000,
    duration_us=600_000_000,
    end_us=T0,
    peak=2.1,
    grade="D",
    equipment="GRAN-1",
    excursion_id="EX-5",
    limit_set_id="LS-R101",
    limit_set_version=3,
    alarm_ids=("AL-1",),
)


def opened(cls: Classification = C.MAJOR) -> Deviation:
    dev, _ = lc.raise_deviation(
        deviation_id="DEV-1",
        title="DP below action limit in R101",
        source=Source.EXCURSION,
        proposed_classification=cls,
        proposal_rule="action limit with batch in progress",
        discovered_us=T0,
        actor="system",
        evidence=EVIDENCE,
        affected_batch_ids=["B-7"],
    )
    return dev


def investigating(cls: Classification = C.MAJOR) -> Deviation:
    dev, _ = lc.start_investigation(
        opened(cls), 1, actor="qa.anna", at_us=T0 + 1, investigator="qc.bert", note="assigned"
    )
    return dev


def closed() -> Deviation:
    dev, _ = lc.close(
        investigating(),
        2,
        actor="qa.anna",
        at_us=T0 + 2,
        impact_assessment="i",
        root_cause="r",
        final_classification=C.MAJOR,
        capa_ref="CAPA-1",
    )
    return dev


def cancelled() -> Deviation:
    dev, _ = lc.cancel(opened(), 1, actor="qa.anna", at_us=T0 + 1, reason="duplicate of DEV-0")
    return dev


IN_STATUS = {
    St.OPEN: opened,
    St.UNDER_INVESTIGATION: investigating,
    St.CLOSED: closed,
    St.CANCELLED: cancelled,
}


def act(dev: Deviation, action: Action):
    v = dev.version
    if action is A.START_INVESTIGATION:
        return lc.start_investigation(
            dev, v, actor="qa.anna", at_us=T0 + 9, investigator="qc.bert", note="start"
        )
    if action is A.AMEND:
        return lc.amend(
            dev,
            v,
            actor="qa.anna",
            at_us=T0 + 9,
            reason="finding",
            changes={"impact_assessment": "no product exposed"},
        )
    if action is A.CLOSE:
        return lc.close(
            dev,
            v,
            actor="qa.anna",
            at_us=T0 + 9,
            impact_assessment="none",
            root_cause="door",
            final_classification=dev.proposed_classification,
            capa_ref="CAPA-9",
        )
    assert action is A.CANCEL
    return lc.cancel(dev, v, actor="qa.anna", at_us=T0 + 9, reason="raised in error")


EXPECTED = {
    (St.OPEN, A.START_INVESTIGATION): St.UNDER_INVESTIGATION,
    (St.OPEN, A.AMEND): St.OPEN,
    (St.OPEN, A.CANCEL): St.CANCELLED,
    (St.UNDER_INVESTIGATION, A.AMEND): St.UNDER_INVESTIGATION,
    (St.UNDER_INVESTIGATION, A.CLOSE): St.CLOSED,
    (St.UNDER_INVESTIGATION, A.CANCEL): St.CANCELLED,
}
PAIRS = [(s, a) for s in Status for a in Action if a is not A.RAISE]


@pytest.mark.parametrize(("status", "action"), PAIRS, ids=[f"{s}-{a}" for s, a in PAIRS])
def test_every_status_action_pair(status, action):
    dev = IN_STATUS[status]()
    assert dev.status is status
    expected = EXPECTED.get((status, action))
    if expected is None:
        with pytest.raises(IllegalDeviationTransition) as ei:
            act(dev, action)
        assert (ei.value.status, ei.value.action) == (status, action)
        assert f"'{status}'" in str(ei.value) and f"'{action}'" in str(ei.value)
        return
    new, t = act(dev, action)
    assert new.status is expected and new.version == dev.version + 1
    assert (t.from_status, t.to_status, t.action, t.version) == (
        status,
        expected,
        action,
        new.version,
    )
    assert (t.actor, t.at_us) == ("qa.anna", T0 + 9)
    assert set(lc.LIFECYCLE) == set(EXPECTED)
    assert action in lc.allowed_actions(status)


def test_raise_opens_version_1_with_due_dates_and_transition():
    dev, t = lc.raise_deviation(
        deviation_id="DEV-2",
        title="t",
        source=Source.EXCURSION,
        proposed_classification=C.CRITICAL,
        discovered_us=T0,
        actor="system",
        evidence=EVIDENCE,
    )
    assert (dev.status, dev.version, dev.raised_by) == (St.OPEN, 1, "system")
    assert (dev.report_due_us, dev.close_due_us, dev.notify_at_once) == (
        T0 + DAY_US,
        T0 + 30 * DAY_US,
        True,
    )
    assert (t.action, t.from_status, t.to_status, t.version) == (A.RAISE, None, St.OPEN, 1)
    assert t.changes["proposed_classification"] == (None, "critical")
    assert t.changes["evidence"][1]["excursion_id"] == "EX-5"
    assert "capa_ref" not in t.changes  # empty fields are not listed as changes
    assert t.audit_kwargs()["old"] is None


RAISE_MISSING = [
    (
        {"deviation_id": None, "title": " ", "actor": None, "proposed_classification": None},
        ["deviation_id", "title", "actor", "proposed_classification"],
    ),
    ({"evidence": None}, ["evidence"]),
    ({"source": Source.MONITORING_LOSS, "evidence": None}, ["evidence"]),
    ({"source": Source.MANUAL, "evidence": None}, ["description"]),
    ({"title": "", "source": Source.MANUAL, "description": "  "}, ["title", "description"]),
]


@pytest.mark.parametrize(("override", "missing"), RAISE_MISSING)
def test_raise_missing_fields(override, missing):
    kwargs = {
        "deviation_id": "DEV-3",
        "title": "t",
        "source": Source.EXCURSION,
        "proposed_classification": C.MINOR,
        "discovered_us": T0,
        "actor": "u",
        "evidence": EVIDENCE,
    } | override
    with pytest.raises(MissingDeviationFields) as ei:
        lc.raise_deviation(**kwargs)
    assert list(ei.value.missing) == missing
    assert all(m in str(ei.value) for m in missing)


def test_manual_deviation_needs_no_evidence():
    dev, _ = lc.raise_deviation(
        deviation_id="DEV-4",
        title="Logbook entry missing",
        source=Source.MANUAL,
        proposed_classification=C.MINOR,
        discovered_us=T0,
        actor="qa.anna",
        description="Cleaning log of R101 not signed",
    )
    assert dev.evidence is None and dev.source is Source.MANUAL


MISSING = [
    (
        opened,
        lambda d: lc.start_investigation(d, 1, actor=None, at_us=T0, investigator=None, note=""),
        ["actor", "investigator", "note"],
    ),
    (
        opened,
        lambda d: lc.start_investigation(d, 1, actor="a", at_us=T0, investigator="b", note=None),
        ["note"],
    ),
    (
        opened,
        lambda d: lc.amend(d, 1, actor="a", at_us=T0, reason=" ", changes={"title": "x"}),
        ["reason"],
    ),
    (opened, lambda d: lc.cancel(d, 1, actor="", at_us=T0, reason=None), ["actor", "reason"]),
    (
        investigating,
        lambda d: lc.close(d, 2, actor="a", at_us=T0),
        ["impact_assessment", "root_cause", "final_classification"],
    ),
    (
        investigating,
        lambda d: lc.close(
            d,
            2,
            actor="a",
            at_us=T0,
            impact_assessment="i",
            root_cause="r",
            final_classification=C.MAJOR,
        ),
        ["capa_ref"],
    ),
    (
        investigating,
        lambda d: lc.close(
            d,
            2,
            actor="a",
            at_us=T0,
            impact_assessment="i",
            root_cause="r",
            final_classification=C.CRITICAL,
        ),
        ["capa_ref", "classification_rationale"],
    ),
    (
        investigating,
        lambda d: lc.close(
            d,
            2,
            actor="a",
            at_us=T0,
            impact_assessment="i",
            root_cause="r",
            final_classification=C.MINOR,
        ),
        ["classification_rationale"],
    ),
    (
        lambda: investigating(C.MINOR),
        lambda d: lc.close(d, 2, actor=None, at_us=T0, root_cause="r"),
        ["actor", "impact_assessment", "final_classification"],
    ),
]


@pytest.mark.parametrize(("make", "call", "missing"), MISSING)
def test_missing_fields_listed_and_nothing_changed(make, call, missing):
    dev = make()
    before = dev.to_dict()
    with pytest.raises(MissingDeviationFields) as ei:
        call(dev)
    assert list(ei.value.missing) == missing
    assert all(m in str(ei.value) for m in missing)
    assert dev.to_dict() == before


def test_minor_closes_without_capa():
    dev, t = lc.close(
        investigating(C.MINOR),
        2,
        actor="qa.anna",
        at_us=T0 + 5,
        impact_assessment="none",
        root_cause="door left open",
        final_classification=C.MINOR,
        note="closed per SOP-12",
    )
    assert (dev.status, dev.final_classification, dev.capa_ref) == (St.CLOSED, C.MINOR, None)
    assert (dev.closed_by, dev.closed_us) == ("qa.anna", T0 + 5)
    assert t.reason == "closed per SOP-12"
    assert t.changes["final_classification"] == (None, "minor")


def test_close_uses_findings_recorded_earlier():
    dev = investigating()
    dev, _ = lc.amend(
        dev,
        2,
        actor="qc.bert",
        at_us=T0 + 3,
        reason="investigation findings",
        changes={
            "impact_assessment": "B-7 unaffected",
            "root_cause": "HVAC",
            "capa_ref": "CAPA-22",
        },
    )
    dev, _ = lc.close(dev, 3, actor="qa.anna", at_us=T0 + 4, final_classification=C.MAJOR)
    assert (dev.impact_assessment, dev.root_cause, dev.capa_ref) == (
        "B-7 unaffected",
        "HVAC",
        "CAPA-22",
    )


def test_downgrade_with_rationale():
    dev, _ = lc.close(
        investigating(C.MAJOR),
        2,
        actor="qa.anna",
        at_us=T0 + 4,
        impact_assessment="i",
        root_cause="r",
        final_classification=C.MINOR,
        classification_rationale="no batch exposed: doors closed, product sealed",
    )
    assert dev.final_classification is C.MINOR and dev.proposed_classification is C.MAJOR


@pytest.mark.parametrize("action", [a for a in Action if a is not A.RAISE])
@pytest.mark.parametrize("stale", [0, 2, 5])
def test_stale_version_refused_first(action, stale):
    fake = opened()  # version 1; missing fields too, but the stale version is reported
    call = {
        A.START_INVESTIGATION: lambda: lc.start_investigation(
            fake, stale, actor=None, at_us=T0, investigator=None, note=None
        ),
        A.AMEND: lambda: lc.amend(fake, stale, actor=None, at_us=T0, reason=None, changes={}),
        A.CLOSE: lambda: lc.close(fake, stale, actor=None, at_us=T0),
        A.CANCEL: lambda: lc.cancel(fake, stale, actor=None, at_us=T0, reason=None),
    }[action]
    with pytest.raises(StaleVersion) as ei:
        call()
    assert (ei.value.expected, ei.value.actual) == (stale, 1)
    assert "version" in str(ei.value) and "DEV-1" in str(ei.value)


def test_two_users_on_one_deviation():
    dev = opened()
    a_dev, _ = lc.start_investigation(
        dev, 1, actor="qa.anna", at_us=T0 + 1, investigator="qc.bert", note="mine"
    )
    with pytest.raises(StaleVersion):  # the second user still holds version 1
        lc.cancel(a_dev, 1, actor="qa.carl", at_us=T0 + 2, reason="dup")
    assert a_dev.status is St.UNDER_INVESTIGATION and a_dev.version == 2


def test_amend_records_old_and_new_values():
    dev = opened()
    new, t = lc.amend(
        dev,
        1,
        actor="qa.anna",
        at_us=T0 + 1,
        reason="batch B-8 also in room",
        changes={
            "affected_batch_ids": ["B-7", "B-8"],
            "linked_deviation_ids": ["DEV-0"],
            "proposed_classification": "critical",
        },
    )
    assert new.affected_batch_ids == ("B-7", "B-8") and new.version == 2
    assert new.proposed_classification is C.CRITICAL
    assert t.changes == {
        "affected_batch_ids": (["B-7"], ["B-7", "B-8"]),
        "linked_deviation_ids": ([], ["DEV-0"]),
        "proposed_classification": ("major", "critical"),
    }
    assert t.audit_kwargs() == {
        "actor": "qa.anna",
        "action": "deviation.amend",
        "record_type": "deviation",
        "record_id": "DEV-1",
        "reason": "batch B-8 also in room",
        "old": {
            "affected_batch_ids": ["B-7"],
            "linked_deviation_ids": [],
            "proposed_classification": "major",
        },
        "new": {
            "affected_batch_ids": ["B-7", "B-8"],
            "linked_deviation_ids": ["DEV-0"],
            "proposed_classification": "critical",
        },
        "ts_us": T0 + 1,
    }


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"status": "closed"}, "cannot amend status"),
        ({"version": 9, "final_classification": "minor"}, "final_classification, version"),
        ({"title": "DP below action limit in R101"}, "changes nothing"),
        ({"evidence": {"tag": "x"}}, "Evidence"),
    ],
)
def test_amend_refusals(changes, match):
    with pytest.raises(InvalidValue, match=match):
        lc.amend(opened(), 1, actor="a", at_us=T0, reason="r", changes=changes)


def test_start_investigation_fields():
    dev, t = lc.start_investigation(
        opened(),
        1,
        actor="qa.anna",
        at_us=T0 + 7,
        investigator="qc.bert",
        note="HVAC logs requested",
    )
    assert (dev.investigator, dev.investigation_started_us, dev.investigation_note) == (
        "qc.bert",
        T0 + 7,
        "HVAC logs requested",
    )
    assert t.changes["status"] == ("open", "under_investigation")
    assert t.reason == "HVAC logs requested"


def test_cancel_fields():
    dev = cancelled()
    assert (dev.status, dev.cancel_reason, dev.version) == (St.CANCELLED, "duplicate of DEV-0", 2)


@pytest.mark.parametrize("make", [opened, investigating, closed, cancelled])
def test_deviation_round_trip(make):
    dev = make()
    assert Deviation.from_dict(json.loads(json.dumps(dev.to_dict()))) == dev


def test_transition_round_trip():
    dev = opened()
    _, t0 = lc.raise_deviation(
        deviation_id="D",
        title="t",
        source=Source.MANUAL,
        proposed_classification=C.MINOR,
        discovered_us=T0,
        actor="u",
        description="d",
    )
    _, t1 = lc.amend(dev, 1, actor="u", at_us=T0, reason="r", changes={"evidence": None})
    for t in (t0, t1):
        assert Transition.from_dict(json.loads(json.dumps(t.to_dict()))) == t
