"""The deviation investigation file as an inspector reads it: the PDF's text, extracted by
pdftotext (poppler-utils) in a process of its own."""

from __future__ import annotations

import subprocess

import pytest

from gmp_edge.review.investigation import render_investigation_pdf
from tests.unit.test_review_investigation import TAG, signed_file

from .conftest import require_tool

pytestmark = pytest.mark.system


def test_pdf_prints_the_record(tmp_path):
    pdftotext = require_tool("pdftotext")
    out = render_investigation_pdf(signed_file(), tmp_path / "dev.pdf")
    assert out.read_bytes().startswith(b"%PDF")
    text = subprocess.run(
        [pdftotext, "-layout", str(out), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    for want in (
        "Deviation investigation file DEV-9",
        TAG,
        "door propped open",
        "26.4",
        "NOT VALID",
        "Q. A. Approver",
        "UTC",
        "timed out",
        "B-1",
    ):
        assert want in text, want
