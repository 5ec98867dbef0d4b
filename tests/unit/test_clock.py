"""gmp_edge.clock: the system clock's units, and the manual clock tests inject."""

from __future__ import annotations

import time

import pytest

from gmp_edge import clock
from gmp_edge.clock import SYSTEM_CLOCK, Clock, ManualClock, SystemClock


def test_now_us_is_integer_utc_microseconds() -> None:
    before = time.time_ns() // 1000
    got = clock.now_us()
    after = time.time_ns() // 1000
    assert isinstance(got, int)
    assert before <= got <= after


def test_monotonic_never_goes_back() -> None:
    a = clock.monotonic()
    b = clock.monotonic()
    assert isinstance(a, float) and b >= a


def test_system_clock_is_the_module_functions() -> None:
    assert isinstance(SYSTEM_CLOCK, SystemClock)
    c: Clock = SYSTEM_CLOCK  # the protocol is satisfied (mypy checks this line)
    before = clock.now_us()
    assert before <= c.now_us() <= clock.now_us()
    m = clock.monotonic()
    assert m <= c.monotonic() <= clock.monotonic()


@pytest.mark.parametrize(
    ("seconds", "us", "want_us", "want_mono"),
    [
        (0.0, 0, 1_000_000, 5.0),
        (1.5, 0, 2_500_000, 6.5),
        (0.0, 1, 1_000_001, 5.000001),
        (2.0, 250, 3_000_250, 7.00025),
        (0.0000005, 0, 1_000_000, 5.0),  # half a microsecond rounds to even: none
    ],
)
def test_manual_clock_advances_both_clocks(
    seconds: float, us: int, want_us: int, want_mono: float
) -> None:
    c = ManualClock(start_us=1_000_000, start_monotonic=5.0)
    c.advance(seconds, us=us)
    assert c.now_us() == want_us
    assert c.monotonic() == pytest.approx(want_mono, abs=1e-9)


def test_manual_clock_set_steps_only_the_wall_clock() -> None:
    c = ManualClock(start_us=10_000_000, start_monotonic=3.0)
    c.set(4_000_000)  # stepped back, as NTP or an operator might
    assert (c.now_us(), c.monotonic()) == (4_000_000, 3.0)
    c.set(90_000_000)
    assert (c.now_us(), c.monotonic()) == (90_000_000, 3.0)


def test_manual_clock_refuses_to_advance_backwards() -> None:
    c = ManualClock(start_us=7)
    with pytest.raises(ValueError, match="forward only"):
        c.advance(-1.0)
    assert (c.now_us(), c.monotonic()) == (7, 0.0)


def test_manual_clock_is_a_clock() -> None:
    c: Clock = ManualClock(start_us=123)
    assert c.now_us() == 123 and c.monotonic() == 0.0
