"""Release readiness: each blocker and each warning, from hand-built reviews."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from gmp_edge.review.model import (
    AuditVerdict,
    BatchReview,
    Capability,
    DeviationRef,
    EquipmentStatus,
    Excursion,
    GapSpan,
    LimitSetVersion,
    OotFinding,
    Stats,
    TagReview,
)
from gmp_edge.review.readiness import Policy, assess

S = 1_000_000
T0 = 1_790_000_000 * S


def tag(**kw) -> TagReview:
    base: dict[str, Any] = {
        "tag": "s/a/r/e/t",
        "room": "r",
        "equipment": "e",
        "unit": "",
        "kind": "dp",
        "critical": True,
        "continuous_monitoring": True,
        "interval_s": 1.0,
        "expected": 3600,
        "good": 3600,
        "uncertain": 0,
        "bad": 0,
        "completeness_pct": 100.0,
        "gaps": (),
        "stats": Stats(0),
        "limits": (),
        "excursions": (),
        "oot": (),
        "capability": None,
    }
    base.update(kw)
    return TagReview(**base)


def clean(**kw) -> BatchReview:
    base: dict[str, Any] = {
        "batch_id": "B-1",
        "product": "P",
        "rooms": ("r",),
        "equipment_ids": ("e",),
        "start_us": T0,
        "end_us": T0 + 3600 * S,
        "period_end_us": T0 + 3600 * S,
        "compiled_us": T0 + 7200 * S,
        "config_versions": (),
        "limit_sets": (LimitSetVersion("site", 1, "approved", 0, T0, None, "qa", "r"),),
        "tags": (tag(),),
        "equipment": (),
        "deviations": (),
        "quarantined": 0,
        "audit": AuditVerdict(True, 10, "h"),
        "audit_entries": (),
    }
    base.update(kw)
    return BatchReview(**base)


def dev(status="closed", cls="minor") -> DeviationRef:
    return DeviationRef("DEV-1", "T high", status, cls, "minor", T0)


def eq(flagged=True) -> EquipmentStatus:
    return EquipmentStatus(
        "press-01",
        "press",
        "r",
        "",
        "2020-01-01",
        None,
        "expired",
        "not_recorded",
        flagged,
        "qualification valid until 2020-01-01",
    )


def exc(level) -> Excursion:
    return Excursion("s/a/r/e/t#x", level, "high", T0, T0 + S, S, 1.0, 0.5, "site", 1)


GAP = GapSpan(T0, T0 + 60 * S, 60 * S, "network", "timed out")
LOW_CAP = Capability(1.0, 2.0, 100, 1.5, 0.2, 0.2, 0.83, 0.83, 0.83, 0.83)

BLOCKERS = [
    ("batch_not_ended", {"end_us": None}),
    ("deviation_open", {"deviations": (dev("open", None),)}),
    ("deviation_open", {"deviations": (dev("under_investigation", "major"),)}),
    ("deviation_unclassified", {"deviations": (dev("closed", None),)}),
    ("completeness_low", {"tags": (tag(completeness_pct=90.0),)}),
    ("monitoring_loss", {"tags": (tag(gaps=(GAP,)),)}),
    ("equipment_status", {"equipment": (eq(),)}),
    ("quarantined_points", {"quarantined": 3}),
    ("audit_chain_broken", {"audit": AuditVerdict(False, 10, "h", 4, "hash mismatch")}),
    ("action_excursion_without_deviation", {"tags": (tag(excursions=(exc("action"),)),)}),
]

WARNINGS = [
    ("alert_excursion", {"tags": (tag(excursions=(exc("alert"),)),)}),
    ("oot", {"tags": (tag(oot=(OotFinding("a#oot", T0, None, 1.0, "ewma"),)),)}),
    ("capability_low", {"tags": (tag(kind="press_parameter", capability=LOW_CAP),)}),
    ("completeness_below_target", {"tags": (tag(completeness_pct=97.0),)}),
    ("completeness_below_target", {"tags": (tag(critical=False, completeness_pct=50.0),)}),
    (
        "completeness_unknown",
        {"tags": (tag(interval_s=None, expected=None, completeness_pct=None),)},
    ),
    (
        "limit_set_changed",
        {
            "limit_sets": (
                LimitSetVersion("site", 1, "superseded", 0, T0, T0 + 60 * S, "qa", "r"),
                LimitSetVersion("site", 2, "approved", T0 + 60 * S, T0 + 60 * S, None, "qa2", "r"),
            )
        },
    ),
]


def test_clean_review_suggests_release_and_says_a_person_decides():
    r = assess(clean())
    assert (r.blockers, r.warnings, r.recommendation) == ((), (), "release")
    assert "a person decides" in r.text


@pytest.mark.parametrize(("code", "change"), BLOCKERS)
def test_each_blocker(code, change):
    r = assess(clean(**change))
    assert [b.code for b in r.blockers] == [code]
    assert r.recommendation == "hold"
    assert r.blockers[0].message and r.blockers[0].refs


@pytest.mark.parametrize(("code", "change"), WARNINGS)
def test_each_warning(code, change):
    r = assess(clean(**change))
    assert r.blockers == ()
    assert [w.code for w in r.warnings] == [code]
    assert r.recommendation == "release"


def test_action_excursion_is_not_a_warning_the_blocker_or_the_deviation_carries_it():
    r = assess(clean(tags=(tag(excursions=(exc("action"),)),)))
    assert r.warnings == ()


def about(alarm_ids=(), tag_path=None, start=None, end=None, **kw) -> DeviationRef:
    return replace(
        dev(**kw),
        alarm_ids=alarm_ids,
        tag=tag_path,
        excursion_start_us=start,
        excursion_end_us=end,
    )


TAG = "s/a/r/e/t"
ALARM = f"{TAG}#x"
COVERAGE = [
    # (linked deviations, is the action excursion still a blocker of its own?)
    ((), True),  # nothing raised for it, or raised before a back-dated batch existed
    ((about((ALARM,)),), False),  # raised for that alarm, closed and classified
    ((about((ALARM,), status="cancelled", cls=None),), True),  # cancelled: raised in error
    ((about(("s/a/r/e/other#x",)),), True),  # about another alarm
    ((about(tag_path=TAG, start=T0 - S, end=T0 + S // 2),), False),  # by hand, same tag, overlaps
    ((about(tag_path=TAG, start=T0 + 2 * S, end=None),), True),  # same tag, after it ended
    ((about(tag_path="s/a/r/e/u", start=T0, end=T0 + S),), True),  # another tag
]


@pytest.mark.parametrize(("deviations", "blocks"), COVERAGE)
def test_an_action_excursion_blocks_unless_a_deviation_is_about_it(deviations, blocks):
    # before the fix an action excursion never blocked: it relied on a linked deviation,
    # and a batch registered after the excursion had none (issue 13 item 6)
    r = assess(clean(tags=(tag(excursions=(exc("action"),)),), deviations=deviations))
    codes = [b.code for b in r.blockers]
    assert codes.count("action_excursion_without_deviation") == (1 if blocks else 0)
    if blocks:
        b = next(b for b in r.blockers if b.code == "action_excursion_without_deviation")
        assert f"alarm:{ALARM}" in b.refs and "has no deviation" in b.message
        assert r.recommendation == "hold"


def test_non_critical_gap_is_not_a_blocker():
    r = assess(clean(tags=(tag(critical=False, gaps=(GAP,)),)))
    assert r.blockers == ()


def test_closed_and_cancelled_deviations_do_not_block():
    r = assess(
        clean(deviations=(dev("closed", "major"), replace(dev("cancelled", None), id="DEV-2")))
    )
    assert r.blockers == ()


def test_critical_deviation_suggests_reject():
    r = assess(clean(deviations=(dev("closed", "critical"),)))
    assert r.recommendation == "reject" and "a person decides" in r.text


def test_policy_thresholds_are_configurable():
    review = clean(tags=(tag(completeness_pct=97.0),))
    assert [b.code for b in assess(review, Policy(completeness_blocker_pct=98)).blockers] == [
        "completeness_low"
    ]
    assert assess(review, Policy(completeness_warning_pct=96)).warnings == ()


def test_findings_write_numbers_and_durations_for_people() -> None:
    """Found: "for 46.0007 s (peak 3057190.698079267)" and "60 s in total" as raw floats."""
    long = Excursion(
        "s/a/r/e/t#x",
        "alert",
        "high",
        T0,
        T0 + 46 * S,
        46_000_700,
        3057190.698079267,
        1e6,
        "site",
        1,
    )
    lost = GapSpan(T0, T0 + 125 * S, 125 * S, "network", "timed out")
    r = assess(clean(tags=(tag(unit="particles/m3", excursions=(long,), gaps=(lost,)),)))
    text = [f.message for f in (*r.blockers, *r.warnings)]
    assert any("for 46 s (peak 3,057,191 particles/m3)" in m for m in text), text
    assert any("2 min 5 s in total" in m for m in text), text
