"""The clock status the service audits at start, asked of this machine's OS for real
(timedatectl in a process of its own, where it is installed)."""

from __future__ import annotations

import pytest

from gmp_edge.edge.clock_status import clock_status

pytestmark = pytest.mark.system


def test_status_of_this_machine_never_raises():
    s = clock_status()
    assert s["source"] in {"timedatectl", "systemd-timesyncd", "unknown"}
    assert s["synchronized"] in (True, False, None)
