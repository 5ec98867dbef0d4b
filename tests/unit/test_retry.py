"""The shared backoff: each caller's delays and caps, configured by parameters."""

from __future__ import annotations

import random
from typing import Any

import pytest

from gmp_edge.retry import Backoff

# (what it stands for, constructor arguments, delays of the first failures in a row)
EXACT = [
    ("collector reconnect, no jitter", (0.5, 30.0), [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]),
    ("collector tight cap", (0.5, 3.0), [0.5, 1.0, 2.0, 3.0, 3.0]),
    ("forwarder defaults", (0.5, 60.0), [0.5, 1, 2, 4, 8, 16, 32, 60, 60, 60, 60]),
    ("webhook defaults", (1.0, 30.0), [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]),
    ("webhook with no backoff", (0.0, 30.0), [0.0, 0.0, 0.0]),
    ("base equals cap", (5.0, 5.0), [5.0, 5.0, 5.0]),
    ("factor three", (1.0, 50.0, 3.0), [1.0, 3.0, 9.0, 27.0, 50.0]),
    ("constant", (2.0, 10.0, 1.0), [2.0, 2.0, 2.0]),
]


@pytest.mark.parametrize(("args", "delays"), [e[1:] for e in EXACT], ids=[e[0] for e in EXACT])
def test_delays_grow_to_the_cap(args: tuple[Any, ...], delays: list[float]) -> None:
    b = Backoff(*args)
    assert [b.next_delay() for _ in delays] == pytest.approx(delays)
    assert b.attempts == len(delays)


@pytest.mark.parametrize(("args", "delays"), [e[1:] for e in EXACT], ids=[e[0] for e in EXACT])
def test_reset_starts_again_from_the_base(args: tuple[Any, ...], delays: list[float]) -> None:
    b = Backoff(*args)
    for _ in range(5):
        b.next_delay()
    b.reset()
    assert b.attempts == 0
    assert b.next_delay() == pytest.approx(delays[0])


@pytest.mark.parametrize(
    ("base", "cap", "jitter"), [(0.5, 30.0, 0.1), (0.5, 3.0, 0.1), (1.0, 8.0, 0.5)]
)
def test_jitter_stays_within_its_fraction_and_under_the_cap(
    base: float, cap: float, jitter: float
) -> None:
    b = Backoff(base, cap, jitter=jitter, rng=random.Random(7))
    exact = Backoff(base, cap)
    for _ in range(50):
        want, got = exact.next_delay(), b.next_delay()
        assert want * (1 - jitter) - 1e-12 <= got <= min(cap, want * (1 + jitter)) + 1e-12


def test_jitter_spreads_the_delays() -> None:
    delays = {
        Backoff(1.0, 10.0, jitter=0.1, rng=random.Random(seed)).next_delay() for seed in range(20)
    }
    assert len(delays) > 10


def test_a_failure_that_lasts_forever_never_overflows() -> None:
    # 2.0 ** 1100 does not fit a float: the delay must stay at the cap, not raise
    b = Backoff(0.5, 60.0)
    for _ in range(1100):
        b.next_delay()
    assert b.next_delay() == 60.0


@pytest.mark.parametrize(
    "args",
    [(-1.0, 10.0), (5.0, 1.0), (1.0, 10.0, 0.5), (1.0, 10.0, 2.0, 1.0), (1.0, 10.0, 2.0, -0.1)],
)
def test_bad_parameters_are_refused(args: tuple[Any, ...]) -> None:
    with pytest.raises(ValueError, match="bad backoff"):
        Backoff(*args)
