"""`python -m gmp_edge.evidence verify`, the inspector's offline check, run as a process of its own
(interpreter start, module entry point, exit status) on a package built like the unit tests'."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_evidence import Env, populate

pytestmark = pytest.mark.system

SRC = Path(__file__).parents[2] / "src"


def verify(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gmp_edge.evidence", "verify", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        check=False,
        timeout=120,
    )


def test_python_m_evidence_verifies_a_package(tmp_path):
    env = Env(tmp_path)
    try:
        populate(env)
        info = env.build()
    finally:
        env.close()
    run = verify(str(info.path))
    assert run.returncode == 0, run.stderr
    assert "VERIFIED" in run.stdout
    run = verify(str(info.path), "--fingerprint", "00" * 32)
    assert run.returncode == 1, run.stderr
    assert "PROBLEM: public_key.pem" in run.stdout
