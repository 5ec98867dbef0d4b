"""The sign-in rate limiter: limits per key, answers when to retry, forgets idle keys.

Time is driven with time-machine (the ``limits`` storage reads ``time.time()`` itself and
takes no clock), from a fixed instant on a minute boundary, so nothing here waits for real
time to pass except the storage's own expiry pass (10 ms after an attempt), which the tests
join rather than poll for.
"""

from __future__ import annotations

import pytest
import time_machine

from gmp_edge.api.ratelimit import RateLimiter, window_start_us

START = 1_800_000_000  # 2027-01-15T08:00:00Z, a minute boundary; fixed, not today


def expiry_pass(limiter: RateLimiter) -> None:
    """Wait for the storage's pending expiry pass, if one is scheduled, to finish."""
    limiter.storage.timer.join()


def test_keys_are_forgotten_once_their_windows_have_passed():
    with time_machine.travel(START, tick=False) as clock:
        limiter = RateLimiter(20, 60)
        for i in range(30_010):  # a scan from many addresses, each trying once
            assert limiter.retry_after_s(f"client:10.{i // 65536}.{i // 256 % 256}.{i % 256}") == 0
        assert limiter.counts_held() == 30_010
        expiry_pass(limiter)  # a pass that began before the jump would see the old time
        clock.shift(2 * 60 + 1)  # this window and the one weighed with it are over
        assert limiter.retry_after_s("user:late") == 0  # an attempt schedules the next pass
        expiry_pass(limiter)
        assert limiter.counts_held() == 1
        assert limiter.storage.expirations.keys() == limiter.storage.storage.keys()
        assert len(limiter.storage.locks) <= 1


def test_a_burst_is_refused_with_the_time_to_wait_and_other_keys_are_not():
    with time_machine.travel(START, tick=False) as clock:
        limiter = RateLimiter(5, 60)
        for _ in range(5):
            assert limiter.retry_after_s("user:qa") == 0
            clock.shift(1)
        # five attempts in the first 5 s of the window; the window ends 55 s from now
        waits = [limiter.retry_after_s("user:qa") for _ in range(3)]
        assert waits == [pytest.approx(55)] * 3  # refusals are not counted: the wait holds
        assert limiter.retry_after_s("user:other") == 0
        clock.shift(60)  # 5 s into the next window the last one weighs 5 x 55/60 = 4.6, so 4
        assert limiter.retry_after_s("user:qa") == 0
        assert limiter.retry_after_s("user:qa") > 0


@pytest.mark.parametrize("offset_s", [0, 0.000001, 20, 59.999999, 60, 61])
def test_window_start_is_the_window_the_library_counts_in(offset_s):
    # the aggregate audit of refused sign-ins (api.refusals) tallies per this window: it must
    # be the limiter's, so one window of refusals is one window of the limit
    at = START + offset_s
    ts_us = round(at * 1_000_000)
    limiter = RateLimiter(5, 60)
    expiry_pass(limiter)
    _, current = limiter.storage.sliding_window_keys("k", 60, at)
    assert current == f"k/{window_start_us(ts_us, 60) // 60_000_000}"
    assert window_start_us(ts_us, 60) <= ts_us < window_start_us(ts_us, 60) + 60_000_000
