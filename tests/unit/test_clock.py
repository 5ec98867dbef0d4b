"""Wall-clock jump detection against the monotonic clock."""

import pytest

from edge.clock import ClockWatch, clock_status


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


def test_status_never_raises():
    s = clock_status()
    assert "synchronized" in s
