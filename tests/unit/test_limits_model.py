"""Limit sets, validation messages and presets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gmp_edge.limits.model import (
    AT_REST,
    IN_OPERATION,
    Condition,
    LimitSet,
    TagKind,
    TagLimits,
    Threshold,
)
from gmp_edge.limits.presets import (
    ANNEX1_2022_TABLE5,
    DP_MIN_PA,
    annex1_action_limit,
    default_tag_limits,
    iso14644_limit,
    regulatory_action_max,
)
from gmp_edge.limits.validation import Problem, validate_limit_set

KNOWN = {"p05", "p50", "dp1", "t1"}


def lset(*limits, **kw):
    base: dict[str, Any] = {
        "id": "room-12",
        "version": 2,
        "effective_from_us": 10**15,
        "reason": "requal",
        "proposed_by": "alice",
        "approved_by": None,
    }
    base.update(kw)
    return LimitSet(limits=limits, **base)


def problems(*limits, **kw):
    return [str(p) for p in validate_limit_set(lset(*limits, **kw), KNOWN)]


GOOD = TagLimits(
    "p05",
    alert_high=Threshold(2_000_000),
    action_high=Threshold(3_520_000),
    applies_in=frozenset({IN_OPERATION}),
    kind=TagKind.PARTICLES_0_5,
    grade="C",
)


def test_valid_set_has_no_problems():
    assert problems(GOOD, TagLimits("dp1", action_low=Threshold(10), alert_low=Threshold(13))) == []


T = "tag 't1'"


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        (
            TagLimits("t1", alert_high=Threshold(26), action_high=Threshold(25)),
            f"{T}: alert_high: high alert 26 is above the high action limit 25; "
            "the alert must be inside the action limit",
        ),
        (
            TagLimits("t1", alert_low=Threshold(17), action_low=Threshold(18)),
            f"{T}: alert_low: low alert 17 is below the low action limit 18; "
            "the alert must be inside the action limit",
        ),
        (
            TagLimits("t1", action_low=Threshold(26), action_high=Threshold(25)),
            f"{T}: action_low: action_low 26 is not below action_high 25; "
            "the normal range would be empty",
        ),
        (
            TagLimits("t1", action_high=Threshold(25), on_delay_s=-1),
            f"{T}: on_delay_s: must not be negative, got -1",
        ),
        (
            TagLimits("t1", action_high=Threshold(25), off_delay_s=-2, delay_justification="x"),
            f"{T}: off_delay_s: must not be negative, got -2",
        ),
        (
            TagLimits("t1", action_high=Threshold(25), deadband=-0.5),
            f"{T}: deadband: must not be negative, got -0.5",
        ),
        (
            TagLimits("t1", action_high=Threshold(25), on_delay_s=30),
            f"{T}: delay_justification: a delay > 0 needs a written justification (Annex 1: "
            "alarm delays must be assessed and justified)",
        ),
        (
            TagLimits("t1", action_high=Threshold(25), off_delay_s=5, delay_justification="  "),
            f"{T}: delay_justification: a delay > 0 needs a written justification (Annex 1: "
            "alarm delays must be assessed and justified)",
        ),
        (
            TagLimits("zz", action_high=Threshold(25)),
            "tag 'zz': tag: unknown tag (not in the tag configuration)",
        ),
        (
            TagLimits("t1", action_high=Threshold(float("nan"))),
            f"{T}: action_high: limit must be a finite number, got nan",
        ),
        (
            TagLimits("t1", action_high=Threshold(25), applies_in=frozenset({"lunch"})),
            f"{T}: applies_in: unknown production state(s) lunch; known: at_rest, in_operation",
        ),
        (
            TagLimits("t1", action_high=Threshold(25), applies_in=frozenset()),
            f"{T}: applies_in: empty: the limits would never apply",
        ),
        (
            TagLimits("t1", action_high=Threshold(25), action_low=Threshold(20), deadband=5),
            f"{T}: deadband: deadband 5 is not smaller than the action band 20..25",
        ),
        (
            TagLimits(
                "p05",
                action_high=Threshold(3_520_001),
                kind=TagKind.PARTICLES_0_5,
                grade="C",
                applies_in=frozenset({IN_OPERATION}),
            ),
            "tag 'p05': action_high: 3.52e+06 exceeds the regulatory maximum (Annex 1 (2022) "
            "Table 5 grade C in_operation >= 0.5 um: 3520000/m3)",
        ),
        (
            # limits for all states: the stricter at-rest cell is the ceiling
            TagLimits("p50", action_high=Threshold(3000), kind=TagKind.PARTICLES_5_0, grade="C"),
            "tag 'p50': action_high: 3000 exceeds the regulatory maximum (Annex 1 (2022) "
            "Table 5 grade C at_rest >= 5.0 um: 2930/m3)",
        ),
        (
            TagLimits("p05", alert_high=Threshold(5), kind=TagKind.PARTICLES_0_5, grade="A"),
            "tag 'p05': action_high: missing; a regulatory preset applies (Annex 1 (2022) "
            "Table 5 grade A at_rest >= 0.5 um: 3520/m3)",
        ),
    ],
)
def test_each_bad_entry_gives_one_clear_message(limits, expected):
    assert problems(limits) == [expected]


def test_grade_d_in_operation_has_no_ceiling():
    lim = TagLimits(
        "p05",
        action_high=Threshold(9e9),
        kind=TagKind.PARTICLES_0_5,
        grade="D",
        applies_in=frozenset({IN_OPERATION}),
    )
    assert problems(lim) == []


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"version": 0}, "limit set: version: must be >= 1, got 0"),
        ({"reason": " "}, "limit set: reason: a reason for the change is required"),
        ({"id": ""}, "limit set: id: must not be empty"),
        ({"proposed_by": ""}, "limit set: proposed_by: must not be empty"),
        (
            {"approved_by": "alice"},
            "limit set: approved_by: the approver must not be the proposer (four eyes)",
        ),
    ],
)
def test_set_level_messages(kw, expected):
    assert problems(GOOD, **kw) == [expected]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (None, None, ["tag 't1': tag: duplicate entry: two entries apply in all states"]),
        (None, {AT_REST}, ["tag 't1': tag: duplicate entry: two entries apply in at_rest"]),
        ({AT_REST}, None, ["tag 't1': tag: duplicate entry: two entries apply in at_rest"]),
        (
            {AT_REST, IN_OPERATION},
            {IN_OPERATION},
            ["tag 't1': tag: duplicate entry: two entries apply in in_operation"],
        ),
        ({AT_REST}, {IN_OPERATION}, []),  # disjoint states: allowed
    ],
)
def test_duplicates(a, b, expected):
    mk = lambda s: TagLimits("t1", action_high=Threshold(25), applies_in=s)  # noqa: E731
    assert problems(mk(a), mk(b)) == expected


def test_all_problems_at_once():
    bad = TagLimits("t1", alert_high=Threshold(30), action_high=Threshold(25), on_delay_s=-1)
    got = validate_limit_set(lset(bad, TagLimits("zz"), version=0, reason=""), KNOWN)
    assert {(p.tag, p.field) for p in got} == {
        (None, "version"),
        (None, "reason"),
        ("t1", "alert_high"),
        ("t1", "on_delay_s"),
        ("zz", "tag"),
    }
    assert all(isinstance(p, Problem) for p in got)


def test_content_is_canonical_and_round_trips():
    # a plain set, which __post_init__ freezes (the field's annotation names the stored type)
    a = TagLimits("t1", action_high=Threshold(25), applies_in={IN_OPERATION, AT_REST})  # type: ignore[arg-type]
    b = TagLimits(
        "dp1", action_low=Threshold(10, inclusive=True), on_delay_s=30, delay_justification="door"
    )
    s1, s2 = lset(a, b), lset(b, a)
    assert s1.content() == s2.content() and s1.digest() == s2.digest()
    assert "approved_by" not in s1.content()
    assert s1.digest() == lset(a, b, approved_by="bob").digest()  # approval signs content
    assert s1.digest() != lset(a, b, version=3).digest()
    back = LimitSet.from_dict(json.loads(json.dumps(lset(a, b, approved_by="bob").to_dict())))
    assert back.to_dict() == lset(a, b, approved_by="bob").to_dict()
    assert back.entries_for("t1")[0].applies_in == frozenset({AT_REST, IN_OPERATION})


def test_condition_properties():
    level, side = Condition.ALERT_LOW.level, Condition.ALERT_LOW.side
    assert level is not None and side is not None
    assert (level.value, side.value) == ("alert", "low")
    assert Condition.MONITORING_UNAVAILABLE.level is None


# -- presets ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n", "d", "expected"),
    [
        (5, 0.5, 3520),
        (7, 0.5, 352000),
        (8, 5.0, 29300),
        (6, 5.0, 293),
        (6, 0.5, 35200),
        (7, 5.0, 2930),
        (8, 0.5, 3520000),
        (5, 1.0, 832),
        (5, 0.1, 100000),
        (5, 0.2, 23700),
        (5, 0.3, 10200),
        (9, 5.0, 293000),
        (4.8, 0.5, 2220),
    ],
)
def test_iso14644_formula(n, d, expected):
    assert iso14644_limit(n, d) == expected


def test_iso14644_refuses_nonsense():
    with pytest.raises(ValueError):
        iso14644_limit(5, 0)


@pytest.mark.parametrize(
    ("grade", "state", "size", "expected"),
    [
        ("A", AT_REST, 0.5, 3520),
        ("A", IN_OPERATION, 5.0, 29),
        ("B", AT_REST, 5.0, 29),
        ("B", IN_OPERATION, 0.5, 352000),
        ("B", IN_OPERATION, 5.0, 2930),
        ("C", AT_REST, 0.5, 352000),
        ("C", AT_REST, 5.0, 2930),
        ("C", IN_OPERATION, 0.5, 3520000),
        ("C", IN_OPERATION, 5.0, 29300),
        ("D", AT_REST, 0.5, 3520000),
        ("D", AT_REST, 5.0, 29300),
        ("D", IN_OPERATION, 0.5, None),
        ("D", IN_OPERATION, 5.0, None),
    ],
)
def test_annex1_table5(grade, state, size, expected):
    assert annex1_action_limit(grade, state, size) == expected


def test_table5_is_consistent_with_iso_classes():
    # 0.5 um cells are ISO 5/7/8 class limits; 2022 values, not the 2008 2900/29000
    assert ANNEX1_2022_TABLE5["C"][IN_OPERATION][5.0] == iso14644_limit(8, 5.0)
    assert ANNEX1_2022_TABLE5["B"][IN_OPERATION][5.0] == iso14644_limit(7, 5.0)
    with pytest.raises(ValueError):
        annex1_action_limit("E", AT_REST, 0.5)


def test_regulatory_ceiling():
    assert regulatory_action_max(TagKind.DP, "C", None) is None
    assert regulatory_action_max(TagKind.PARTICLES_0_5, None, None) is None
    assert regulatory_action_max(TagKind.PARTICLES_0_5, "D", frozenset({IN_OPERATION})) is None
    ceiling = regulatory_action_max(TagKind.PARTICLES_0_5, "B", None)
    assert ceiling is not None and ceiling[0] == 3520.0


def test_default_particle_limits():
    lim = default_tag_limits(
        "p05", TagKind.PARTICLES_0_5, grade="B", state=IN_OPERATION, alert_fraction=0.5
    )
    assert lim.action_high == Threshold(352000.0) and lim.alert_high == Threshold(176000.0)
    assert lim.applies_in == frozenset({IN_OPERATION}) and lim.continuous_monitoring_required
    assert validate_limit_set(lset(lim), KNOWN) == []
    c = default_tag_limits("p50", TagKind.PARTICLES_5_0, grade="C", state=AT_REST)
    assert c.alert_high == Threshold(2344.0) and not c.continuous_monitoring_required
    with pytest.raises(ValueError, match="no predetermined limit"):
        default_tag_limits("p05", TagKind.PARTICLES_0_5, grade="D", state=IN_OPERATION)
    with pytest.raises(ValueError, match="need a grade"):
        default_tag_limits("p05", TagKind.PARTICLES_0_5)


def test_default_dp_and_climate_limits():
    dp = default_tag_limits("dp1", TagKind.DP)
    assert (dp.action_low, dp.alert_low) == (Threshold(DP_MIN_PA), Threshold(13.0))
    t = default_tag_limits("t1", TagKind.TEMPERATURE, alert_fraction=0.8)
    assert t.action_low is not None and t.action_high is not None
    assert t.alert_low is not None and t.alert_high is not None
    assert (t.action_low.value, t.action_high.value) == (18.0, 25.0)
    assert (t.alert_low.value, t.alert_high.value) == pytest.approx((18.7, 24.3))
    rh = default_tag_limits("rh1", TagKind.RH)
    assert rh.action_low is not None and rh.action_high is not None
    assert (rh.action_low.value, rh.action_high.value) == (30.0, 60.0)
    assert validate_limit_set(lset(dp, t), KNOWN) == []
    with pytest.raises(ValueError):
        default_tag_limits("x", TagKind.PRESS)
    with pytest.raises(ValueError):
        default_tag_limits("t1", TagKind.TEMPERATURE, alert_fraction=0)
