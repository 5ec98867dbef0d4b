"""Capped exponential backoff for reconnects (pure; the caller sleeps)."""

from __future__ import annotations

import random


class Backoff:
    """Delays grow ``min_s * factor**n`` up to ``max_s``; ``reset`` after a success.

    A little jitter keeps a box full of devices from reconnecting in lock-step
    after a switch comes back.
    """

    def __init__(
        self,
        min_s: float,
        max_s: float,
        factor: float = 2.0,
        jitter: float = 0.1,
        rng: random.Random | None = None,
    ):
        if min_s <= 0 or max_s < min_s or factor < 1 or not 0 <= jitter < 1:
            raise ValueError(f"bad backoff ({min_s}, {max_s}, {factor}, {jitter})")
        self.min_s, self.max_s, self.factor, self.jitter = min_s, max_s, factor, jitter
        self._n = 0
        self._rng = rng or random.Random()

    @property
    def attempts(self) -> int:
        """Failures since the last reset."""
        return self._n

    def next_delay(self) -> float:
        """The delay before the next attempt; counts one more failure."""
        base = min(self.max_s, self.min_s * self.factor**self._n)
        self._n += 1
        return min(self.max_s, base * (1 + self._rng.uniform(-self.jitter, self.jitter)))

    def reset(self) -> None:
        """Back to the shortest delay (after a successful connect)."""
        self._n = 0
