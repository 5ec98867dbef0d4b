"""The PDF batch EM report: real PDF, pages rasterised with pdftoppm, text via pdftotext."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from gmp_edge.alarms.model import AlarmEvent, AlarmState, Priority
from gmp_edge.alarms.model import Transition as AlarmTr
from gmp_edge.deviations.batch import Batch
from gmp_edge.historian.store import Gap
from gmp_edge.limits.model import LimitSet, TagLimits, Threshold
from gmp_edge.review.compile import EquipmentInfo, ReviewInputs, TagInput, compile_review
from gmp_edge.review.report import render_pdf

pytestmark = pytest.mark.system

S = 1_000_000
T0 = 1_790_000_000 * S
H = 3600 * S
TEMP = "s/a/r1/e1/temperature"
FORCE = "s/a/r1/press1/main_force"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is required (Debian package poppler-utils)")
    return path


def make_review():
    n = 2 * 3600
    ts = T0 + S * np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(2)
    temp = 21 + 0.2 * rng.standard_normal(n)
    temp[1000:1300] = 23.6
    q = np.zeros(n, dtype=np.int8)
    q[4000:4300] = 2
    force = 15 + 0.6 * rng.standard_normal(n)
    aid = f"{TEMP}#action_high"
    trs = [
        AlarmTr(
            aid,
            TEMP,
            Priority.HIGH,
            AlarmEvent.CONDITION_ACTIVE,
            AlarmState.NORMAL,
            AlarmState.UNACKNOWLEDGED,
            "system",
            T0 + 1000 * S,
            "",
            {"limit_at_trip": 23.0, "limit_set_id": "site", "limit_set_version": 1},
        ),
        AlarmTr(
            aid,
            TEMP,
            Priority.HIGH,
            AlarmEvent.ACKNOWLEDGE,
            AlarmState.UNACKNOWLEDGED,
            AlarmState.ACKNOWLEDGED,
            "op.jones",
            T0 + 1100 * S,
            "HVAC reset",
            {"comment": "HVAC reset"},
        ),
        AlarmTr(
            aid,
            TEMP,
            Priority.HIGH,
            AlarmEvent.CONDITION_CLEARED,
            AlarmState.ACKNOWLEDGED,
            AlarmState.NORMAL,
            "system",
            T0 + 1300 * S,
        ),
    ]
    limits = (
        TagLimits(
            TEMP,
            alert_high=Threshold(22.0),
            action_high=Threshold(23.0),
            continuous_monitoring_required=True,
        ),
        TagLimits(FORCE, action_low=Threshold(12.0), action_high=Threshold(18.0)),
    )
    ls = LimitSet("site", 1, 0, "validated", "eng", "qa", limits)
    tags = [
        TagInput(
            TEMP,
            "r1",
            "e1",
            "degC",
            "temperature",
            1.0,
            ts,
            temp,
            q,
            gaps=[Gap(1, TEMP, T0 + 4000 * S, T0 + 4300 * S, "network", "timed out")],
            transitions=trs,
        ),
        TagInput(
            FORCE,
            "r1",
            "press1",
            "kN",
            "press_parameter",
            1.0,
            ts,
            force,
            np.zeros(n, dtype=np.int8),
        ),
    ]
    return compile_review(
        ReviewInputs(
            batch=Batch("B-2026-0042", "Paracetamol 500 mg", ("press1",), ("r1",), T0, T0 + 2 * H),
            now_us=T0 + 3 * H,
            tags=tags,
            limit_sets=[(ls, "approved")],
            runs=[(1, T0 - H, None, "ab" * 32, "")],
            equipment=[EquipmentInfo("press1", "press", "r1", "Press 1")],
        )
    )


def test_report_pages_and_text(tmp_path):
    pdftoppm, pdftotext = tool("pdftoppm"), tool("pdftotext")
    review = make_review()
    pdf = render_pdf(
        review,
        tmp_path / "report.pdf",
        [{"name": "Quinn Approver", "meaning": "approval", "time": T0 + 3 * H, "valid": True}],
    )
    assert pdf.read_bytes().startswith(b"%PDF-")
    subprocess.run([pdftoppm, "-r", "40", "-png", str(pdf), str(tmp_path / "p")], check=True)
    pages = sorted(tmp_path.glob("p-*.png"))
    assert len(pages) >= 4
    assert all(p.stat().st_size > 1000 for p in pages)
    text = subprocess.run(
        [pdftotext, "-layout", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    for needle in [
        "Batch environmental-monitoring report",
        "B-2026-0042",
        "Paracetamol 500 mg",
        "UTC",
        "site@v1",
        "Suggestion: HOLD",
        "a person decides",
        "monitoring_loss",
        "Excursions",
        "op.jones",
        "HVAC reset",
        "Gaps",
        "timed out",
        "Equipment status",
        "Press capability",
        "Cpk",
        "Audit",
        "Decision signatures",
        "Quinn Approver",
        "approval",
        "valid",
        "main_force",
    ]:
        assert needle in text, needle


def test_report_without_decisions_says_none_signed(tmp_path):
    tool("pdftotext")
    pdf = render_pdf(make_review(), tmp_path / "r.pdf")
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    assert "No decision has been signed" in text
