"""Deviation classification rules (each default rule, first match wins, rules as data)
and due dates from site rules."""

from __future__ import annotations

import json

import pytest

from gmp_edge.deviations.model import (
    Classification,
    ExcursionKind,
    ExcursionSummary,
    ProductionState,
)
from gmp_edge.deviations.rules import (
    DAY_US,
    DEFAULT_RULES,
    HOUR_US,
    ClassificationRule,
    DueDates,
    DuePolicy,
    Proposal,
    classify,
    due_dates,
    rules_from_dicts,
)

T0 = 1_790_000_000_000_000
K = ExcursionKind
C = Classification
OP = ProductionState.IN_OPERATION
REST = ProductionState.AT_REST


def summary(kind=K.ACTION, grade="D", state=OP, duration=10 * 60_000_000, continuous=False):
    return ExcursionSummary(
        tag="site/compression/R201/p_0_5",
        room="R201",
        kind=kind,
        start_us=T0,
        duration_us=duration,
        production_state=state,
        grade=grade,
        equipment="PRESS-1",
        continuous_monitoring=continuous,
    )


RULE_CASES = [
    # (summary kwargs, batch in progress, expected class, expected rule name)
    ({"kind": K.ALERT, "grade": "A"}, True, None, "alert only: no deviation"),
    ({"kind": K.ALERT, "duration": 10 * DAY_US}, True, None, "alert only: no deviation"),
    ({"grade": "A"}, False, C.CRITICAL, "action limit, grade A/B in operation"),
    ({"grade": "B"}, True, C.CRITICAL, "action limit, grade A/B in operation"),
    ({"grade": "B", "state": REST}, False, C.MINOR, "action limit, no batch affected"),
    (
        {"grade": "C", "duration": 4 * HOUR_US},
        True,
        C.CRITICAL,
        "action limit >= 4 h with batch in progress",
    ),
    (
        {"grade": "C", "duration": 4 * HOUR_US - 1},
        True,
        C.MAJOR,
        "action limit with batch in progress",
    ),
    ({"grade": "D"}, True, C.MAJOR, "action limit with batch in progress"),
    ({"grade": None}, True, C.MAJOR, "action limit with batch in progress"),
    ({"grade": "D", "duration": 10 * DAY_US}, False, C.MINOR, "action limit, no batch affected"),
    (
        {"kind": K.MONITORING_LOSS, "continuous": True},
        False,
        C.MAJOR,
        "monitoring loss of continuous-monitoring tag in operation",
    ),
    (
        {"kind": K.MONITORING_LOSS, "continuous": True, "state": REST},
        True,
        None,
        "other monitoring loss: gap recorded, no deviation",
    ),
    (
        {"kind": K.MONITORING_LOSS, "duration": HOUR_US},
        False,
        C.MINOR,
        "monitoring loss >= 1 h in operation",
    ),
    (
        {"kind": K.MONITORING_LOSS, "duration": HOUR_US - 1},
        True,
        None,
        "other monitoring loss: gap recorded, no deviation",
    ),
]


@pytest.mark.parametrize(("kwargs", "batch", "expected", "rule"), RULE_CASES)
def test_default_rules(kwargs, batch, expected, rule):
    p = classify(summary(**kwargs), batch)
    assert p == Proposal(expected is not None, expected, rule)


def test_every_default_rule_is_exercised():
    assert {r.name for r in DEFAULT_RULES} == {case[3] for case in RULE_CASES}


def test_first_match_wins():
    broad = ClassificationRule("any action", C.MINOR, kinds=frozenset({K.ACTION}))
    narrow = ClassificationRule(
        "action grade A", C.CRITICAL, kinds=frozenset({K.ACTION}), grades=frozenset({"A"})
    )
    s = summary(grade="A")
    assert classify(s, False, [broad, narrow]).rule_name == "any action"
    assert classify(s, False, [narrow, broad]).rule_name == "action grade A"


def test_no_rule_matched_raises_nothing():
    rules = [ClassificationRule("alerts", C.MINOR, kinds=frozenset({K.ALERT}))]
    assert classify(summary(), True, rules) == Proposal(False, None, None)


@pytest.mark.parametrize(
    ("field", "value", "mismatch"),
    [
        ("kinds", frozenset({K.ACTION}), {"kind": K.ALERT}),
        ("grades", frozenset({"A"}), {"grade": "B"}),
        ("production_states", frozenset({OP}), {"state": REST}),
        ("continuous_monitoring", True, {"continuous": False}),
        ("min_duration_us", 100, {"duration": 99}),
    ],
)
def test_each_condition_can_exclude(field, value, mismatch):
    rule = ClassificationRule("r", C.MAJOR, **{field: value})
    assert not rule.matches(summary(**mismatch), True)
    assert ClassificationRule("any", C.MAJOR).matches(summary(**mismatch), True)


@pytest.mark.parametrize("batch", [True, False])
def test_batch_condition(batch):
    rule = ClassificationRule("r", C.MAJOR, batch_in_progress=True)
    assert rule.matches(summary(), batch) is batch


def test_rules_as_data_round_trip_and_from_config():
    data = json.loads(json.dumps([r.to_dict() for r in DEFAULT_RULES]))
    assert rules_from_dicts(data) == DEFAULT_RULES
    minimal = rules_from_dicts([{"name": "everything major", "classification": "major"}])
    assert classify(summary(kind=K.ALERT), False, minimal) == Proposal(
        True, C.MAJOR, "everything major"
    )
    with pytest.raises(ValueError, match="duplicate rule names: x"):
        rules_from_dicts([{"name": "x", "classification": None}] * 2)


@pytest.mark.parametrize(
    ("cls", "report", "close", "notify"),
    [
        (C.MINOR, T0 + DAY_US, T0 + 30 * DAY_US, False),
        (C.MAJOR, T0 + DAY_US, T0 + 30 * DAY_US, False),
        (C.CRITICAL, T0 + DAY_US, T0 + 30 * DAY_US, True),
    ],
)
def test_default_due_dates(cls, report, close, notify):
    assert due_dates(cls, T0) == DueDates(report, close, notify)


def test_site_due_policy():
    policy = DuePolicy(
        report_within_us={C.MINOR: 3 * DAY_US, C.MAJOR: DAY_US, C.CRITICAL: 4 * HOUR_US},
        close_within_us={C.MINOR: 60 * DAY_US, C.MAJOR: 30 * DAY_US, C.CRITICAL: 15 * DAY_US},
        notify_at_once=frozenset({C.MAJOR, C.CRITICAL}),
    )
    assert due_dates(C.MINOR, T0, policy) == DueDates(T0 + 3 * DAY_US, T0 + 60 * DAY_US, False)
    assert due_dates(C.MAJOR, T0, policy) == DueDates(T0 + DAY_US, T0 + 30 * DAY_US, True)
    assert due_dates(C.CRITICAL, T0, policy) == DueDates(T0 + 4 * HOUR_US, T0 + 15 * DAY_US, True)
    assert DuePolicy.from_dict(json.loads(json.dumps(policy.to_dict()))) == policy
    assert DuePolicy.from_dict(json.loads(json.dumps(DuePolicy().to_dict()))) == DuePolicy()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"report_within_us": {C.MINOR: DAY_US}},  # no entry for major, critical
        {"close_within_us": {C.MINOR: 0, C.MAJOR: 1, C.CRITICAL: 1}},
    ],
)
def test_due_policy_validation(kwargs):
    with pytest.raises(ValueError):
        DuePolicy(**kwargs)


def test_due_dates_round_trip():
    d = due_dates(C.CRITICAL, T0)
    assert DueDates.from_dict(json.loads(json.dumps(d.to_dict()))) == d
