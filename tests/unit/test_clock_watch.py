"""Wall-clock jump detection against the monotonic clock, and the clock status the OS gives
(its answers given by the test: no process is started)."""

from __future__ import annotations

import subprocess

import pytest

import gmp_edge.edge.clock_status
from gmp_edge.edge.clock_status import ClockWatch, clock_status


@pytest.mark.parametrize(
    ("wall_step", "mono_step", "jump"),
    [
        (1.0, 1.0, None),
        (1.4, 1.0, None),  # below the 1 s threshold: drift, not a step
        (31.0, 1.0, 30.0),  # clock stepped forward 30 s
        (-59.0, 1.0, -60.0),  # stepped back a minute
        (0.0, 2.0, -2.0),
    ],
)
def test_jumps(wall_step, mono_step, jump):
    w = ClockWatch(1.0, wall=1000.0, mono=50.0)
    got = w.sample(wall=1000.0 + wall_step, mono=50.0 + mono_step)
    if jump is None:
        assert got is None
    else:
        assert got is not None and got.delta_s == pytest.approx(jump)


def test_a_jump_is_reported_once():
    w = ClockWatch(1.0, wall=0.0, mono=0.0)
    assert w.sample(wall=100.0, mono=1.0) is not None
    assert w.sample(wall=101.0, mono=2.0) is None


class _Run:
    """Stands in for subprocess.run: answers timedatectl with ``stdout`` or raises."""

    def __init__(self, stdout: str = "", exc: BaseException | None = None) -> None:
        self.stdout, self.exc = stdout, exc
        self.calls: list[list[str]] = []

    def __call__(self, args, **kw):
        self.calls.append(args)
        assert kw.get("timeout"), "timedatectl is never waited on without a timeout"
        if self.exc is not None:
            raise self.exc
        return subprocess.CompletedProcess(args, 0, self.stdout, "")


class _Marker:
    """Stands in for pathlib.Path: whether systemd-timesyncd's marker file exists."""

    def __init__(self, exists: bool) -> None:
        self._exists = exists

    def __call__(self, path: str) -> _Marker:
        assert path == "/run/systemd/timesync/synchronized"
        return self

    def exists(self) -> bool:
        return self._exists


@pytest.mark.parametrize(
    ("which", "run", "marker", "expected"),
    [
        (
            "/usr/bin/timedatectl",
            _Run("yes\nyes\n"),
            False,
            {"source": "timedatectl", "ntp_enabled": True, "synchronized": True},
        ),
        (
            "/usr/bin/timedatectl",
            _Run("yes\nno\n"),
            False,
            {"source": "timedatectl", "ntp_enabled": True, "synchronized": False},
        ),
        # timedatectl there but failing (no systemd, timed out, odd output): look further
        (
            "/usr/bin/timedatectl",
            _Run(exc=subprocess.TimeoutExpired("timedatectl", 2)),
            True,
            {"source": "systemd-timesyncd", "synchronized": True},
        ),
        (
            "/usr/bin/timedatectl",
            _Run(exc=OSError("no bus")),
            False,
            {"source": "unknown", "synchronized": None},
        ),
        ("/usr/bin/timedatectl", _Run(""), False, {"source": "unknown", "synchronized": None}),
        (
            None,
            _Run(exc=AssertionError("not run")),
            True,
            {"source": "systemd-timesyncd", "synchronized": True},
        ),
        (
            None,
            _Run(exc=AssertionError("not run")),
            False,
            {"source": "unknown", "synchronized": None},
        ),
    ],
    ids=[
        "synchronized",
        "not synchronized",
        "timedatectl times out, timesyncd marker",
        "timedatectl fails",
        "timedatectl says nothing",
        "timesyncd marker only",
        "nothing known",
    ],
)
def test_status_never_raises(monkeypatch, which, run, marker, expected):
    # no process is started: what the OS would answer is given (the real call on this
    # machine: tests/system/test_clock_status.py)
    monkeypatch.setattr(gmp_edge.edge.clock_status.shutil, "which", lambda name: which)
    monkeypatch.setattr(gmp_edge.edge.clock_status.subprocess, "run", run)
    monkeypatch.setattr(gmp_edge.edge.clock_status, "Path", _Marker(marker))
    assert clock_status() == expected
    assert len(run.calls) == (1 if which else 0)
