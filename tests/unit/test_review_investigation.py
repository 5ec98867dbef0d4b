"""The deviation investigation file: window, trace, alarm history, signatures, and the PDF."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from gmp_edge.alarms import machine as am
from gmp_edge.alarms.model import ConditionKind, Priority
from gmp_edge.audit.chain import AuditEntry
from gmp_edge.deviations import lifecycle as lc
from gmp_edge.deviations.model import (
    Classification,
    Deviation,
    Evidence,
    ExcursionKind,
    ProductionState,
    Source,
)
from gmp_edge.historian.store import Gap
from gmp_edge.limits.model import LimitSet, TagLimits, Threshold
from gmp_edge.review.compile import TagInput
from gmp_edge.review.investigation import (
    CONTEXT_US,
    SignatureLine,
    compile_investigation,
    render_investigation_pdf,
    window_of,
)

S = 1_000_000
T0 = 1_790_000_000 * S
TAG = "s/a/gran/trh-1/temperature"
ALARM = f"{TAG}#action_high"


def deviation(end_us: int | None = T0 + 600 * S, evidence: bool = True) -> Deviation:
    ev = Evidence(
        tag=TAG,
        room="gran",
        kind=ExcursionKind.ACTION,
        production_state=ProductionState.IN_OPERATION,
        start_us=T0,
        duration_us=600 * S,
        end_us=end_us,
        peak=26.4,
        grade="D",
        equipment="trh-1",
        excursion_id="EX-1",
        limit_set_id="LS",
        limit_set_version=1,
        alarm_ids=(ALARM,),
    )
    dev, _ = lc.raise_deviation(
        deviation_id="DEV-9",
        title="Temperature above action limit in granulation",
        source=Source.EXCURSION if evidence else Source.MANUAL,
        description="" if evidence else "found on a walk-through",
        proposed_classification=Classification.MAJOR,
        proposal_rule="action limit in operation",
        discovered_us=T0 + 30 * S,
        actor="system",
        evidence=ev if evidence else None,
        affected_batch_ids=["B-1"],
    )
    return dev


def limit_set() -> tuple[LimitSet, str]:
    entry = TagLimits(TAG, alert_high=Threshold(24.0), action_high=Threshold(25.0))
    ls = LimitSet("LS", 1, T0 - 3600 * S, "initial", "eng", "qa", (entry,))
    return ls, "approved"


@pytest.mark.parametrize(
    ("end", "now", "want"),
    [
        (T0 + 600 * S, T0 + 10_000 * S, (T0 - CONTEXT_US, T0 + 600 * S + CONTEXT_US)),
        # the context after the end is cut at now
        (T0 + 600 * S, T0 + 700 * S, (T0 - CONTEXT_US, T0 + 700 * S)),
        # still ongoing: up to now
        (None, T0 + 900 * S, (T0 - CONTEXT_US, T0 + 900 * S)),
        # now before the start (clock step): at least one microsecond
        (None, T0 - 5 * S, (T0 - CONTEXT_US, T0 + 1)),
    ],
)
def test_window_table(end, now, want):
    assert window_of(deviation(end), now) == want


def test_no_evidence_no_window_no_chart():
    dev = deviation(evidence=False)
    assert window_of(dev, T0) is None
    f = compile_investigation(dev, T0, "", None, [], [], [])
    assert f.tag is None and f.alarm_history == () and f.window is None


def _tag_input() -> TagInput:
    ts = T0 - 1800 * S + np.arange(0, 3000, dtype=np.int64) * S
    v = np.where((ts >= T0) & (ts < T0 + 600 * S), 26.0, 22.0)
    v[1900] = 26.4
    a = am.new_alarm(ALARM, TAG, ConditionKind.ACTION_HIGH, Priority.HIGH)
    a, t1 = am.activate(a, T0, value=25.3, limit=25.0, limit_set_id="LS", limit_set_version=1)
    a, t2 = am.acknowledge(a, T0 + 60 * S, user="op.olga", comment="door propped open")
    a, t3 = am.clear(a, T0 + 600 * S, value=24.0)
    other = am.new_alarm(f"{TAG}#alert_high", TAG, ConditionKind.ALERT_HIGH, Priority.LOW)
    other, o1 = am.activate(other, T0 - 10 * S, value=24.1, limit=24.0)
    return TagInput(
        tag=TAG,
        room="gran",
        equipment="trh-1",
        unit="degC",
        kind="temperature",
        interval_s=1.0,
        ts_us=ts,
        value=v.astype(np.float64),
        quality=np.zeros(ts.size, dtype=np.int8),
        gaps=(Gap(1, TAG, T0 + 700 * S, T0 + 760 * S, "network", "timed out"),),
        transitions=(t3, o1, t2, t1),
    )


def test_compiled_file_has_trace_peak_history_and_sorted_records():
    dev = deviation()
    sigs = [
        SignatureLine(
            "Q. A. Approver", "qa.approver", "approval", T0 + 900 * S, "closed", True, "valid"
        ),
        SignatureLine(
            "Q. A. Reviewer",
            "qa.reviewer",
            "review",
            T0 + 800 * S,
            "checked",
            False,
            "content changed",
        ),
    ]
    audit = [
        AuditEntry(
            2, T0 + 2, "qa", "deviation.closed", "deviation", "DEV-9", "", None, None, "a", "b"
        ),
        AuditEntry(
            1, T0 + 1, "system", "deviation.raised", "deviation", "DEV-9", "", None, None, "0", "a"
        ),
    ]
    f = compile_investigation(
        dev, T0 + 7200 * S, "ab" * 32, _tag_input(), [limit_set()], sigs, audit
    )
    assert f.window == (T0 - CONTEXT_US, T0 + 600 * S + CONTEXT_US)
    assert f.tag is not None
    assert f.tag.stats.max == 26.4 and f.tag.good == 3000  # readings inside the window only
    (exc,) = [e for e in f.tag.excursions if e.level == "action"]
    assert exc.peak == 26.4 and exc.start_us == T0 and exc.end_us == T0 + 600 * S
    assert [a.by for a in exc.acknowledgements] == ["op.olga"]
    # only the deviation's own alarm, in time order
    assert [t.event.value for t in f.alarm_history] == [
        "condition_active",
        "acknowledge",
        "condition_cleared",
    ]
    assert {t.alarm_id for t in f.alarm_history} == {ALARM}
    assert [s.signer for s in f.signatures] == ["qa.reviewer", "qa.approver"]
    assert [e.seq for e in f.audit] == [1, 2]
    assert len(f.tag.gaps) == 1
    # without alarm ids in the evidence, the tag's alarms are all shown
    assert dev.evidence is not None
    dev2 = replace(dev, evidence=replace(dev.evidence, alarm_ids=()))
    f2 = compile_investigation(dev2, T0 + 7200 * S, "", _tag_input(), [limit_set()], [], [])
    assert {t.alarm_id for t in f2.alarm_history} == {ALARM, f"{TAG}#alert_high"}


def signed_file():
    """The investigation file with a signature that is no longer valid (for the PDF)."""
    dev = deviation()
    sigs = [
        SignatureLine(
            "Q. A. Approver",
            "qa.approver",
            "approval",
            T0 + 900 * S,
            "closed",
            False,
            "no longer valid: the record changed",
        )
    ]
    return compile_investigation(
        dev, T0 + 7200 * S, "cd" * 32, _tag_input(), [limit_set()], sigs, []
    )


def test_pdf_is_rendered(tmp_path):
    # what the PDF says is read back with pdftotext in tests/system/test_investigation_pdf.py
    out = render_investigation_pdf(signed_file(), tmp_path / "dev.pdf")
    pdf = out.read_bytes()
    assert out == tmp_path / "dev.pdf"
    assert pdf.startswith(b"%PDF") and pdf.rstrip().endswith(b"%%EOF")
