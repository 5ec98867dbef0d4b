"""Capped exponential backoff with optional jitter: how long to wait before trying again.

Pure and clock-free: :meth:`Backoff.next_delay` returns a number of seconds and the caller
waits however it waits (a sleep, an event with a timeout, a deadline on its own clock).
Imports nothing of ours but :mod:`gmp_edge.errors`, so every layer may use it.
"""

from __future__ import annotations

import random


class Backoff:
    """Delays ``base_s * factor**n`` after the n-th failure since a success, capped at ``max_s``.

    ``jitter`` spreads each delay by up to that fraction either way (still capped), so a box full
    of devices does not reconnect in lock-step after a switch comes back. :meth:`reset` after a
    success starts again from ``base_s``.
    """

    def __init__(
        self,
        base_s: float,
        max_s: float,
        factor: float = 2.0,
        jitter: float = 0.0,
        rng: random.Random | None = None,
    ):
        if not 0 <= base_s <= max_s or factor < 1 or not 0 <= jitter < 1:
            raise ValueError(f"bad backoff ({base_s}, {max_s}, {factor}, {jitter})")
        self.base_s, self.max_s, self.factor, self.jitter = base_s, max_s, factor, jitter
        self._n = 0
        self._next = base_s
        self._rng = rng or random.Random()

    @property
    def attempts(self) -> int:
        """Failures since the last reset."""
        return self._n

    def next_delay(self) -> float:
        """The delay before the next attempt; counts one more failure."""
        base = self._next
        # grown by multiplying and capped each time: never an overflow, however long it fails
        self._next = min(self.max_s, base * self.factor)
        self._n += 1
        if self.jitter:
            base *= 1 + self._rng.uniform(-self.jitter, self.jitter)
        return min(self.max_s, base)

    def reset(self) -> None:
        """Back to the shortest delay (after a success)."""
        self._n = 0
        self._next = self.base_s
