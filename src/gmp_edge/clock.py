"""The one source of time: wall-clock microseconds (UTC) and a monotonic clock.

Every record time in gmp_edge is an integer of microseconds since the Unix epoch (UTC),
taken from here. Code that needs time takes a :class:`Clock` so that tests can inject a
:class:`ManualClock` instead of patching functions; :data:`SYSTEM_CLOCK` is the real one.
This module imports nothing else of gmp_edge (a leaf, enforced by import-linter).
"""

from __future__ import annotations

import time
from typing import Protocol


def now_us() -> int:
    """Wall-clock time now, in integer microseconds since the Unix epoch (UTC)."""
    return time.time_ns() // 1000


def monotonic() -> float:
    """Seconds on a clock that never jumps (timeouts, backoff, schedules); no epoch."""
    return time.monotonic()


class Clock(Protocol):
    """Where code takes time from: the system's clock, or a test's."""

    def now_us(self) -> int:
        """Wall-clock time in integer microseconds since the Unix epoch (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (not related to the wall clock)."""
        ...


class SystemClock:
    """The operating system's clocks: :func:`now_us` and :func:`monotonic`."""

    def now_us(self) -> int:
        """:func:`gmp_edge.clock.now_us`."""
        return now_us()

    def monotonic(self) -> float:
        """:func:`gmp_edge.clock.monotonic`."""
        return monotonic()


SYSTEM_CLOCK = SystemClock()
"""The clock every production entry point uses."""


class ManualClock:
    """A clock that moves only when told to (tests).

    ``now_us`` starts at ``start_us`` and ``monotonic`` at ``start_monotonic``;
    :meth:`advance` moves both forward by the same amount, :meth:`set` steps the wall
    clock alone (as an NTP step or an operator would), leaving the monotonic clock be.
    """

    def __init__(self, start_us: int = 0, start_monotonic: float = 0.0) -> None:
        self._us = int(start_us)
        self._mono = float(start_monotonic)

    def now_us(self) -> int:
        """The wall-clock time last set or advanced to."""
        return self._us

    def monotonic(self) -> float:
        """The monotonic time: the start plus everything advanced."""
        return self._mono

    def advance(self, seconds: float = 0.0, *, us: int = 0) -> None:
        """Move both clocks forward by ``seconds`` plus ``us`` microseconds (not back)."""
        step_us = round(seconds * 1_000_000) + int(us)
        if step_us < 0:
            raise ValueError(f"a clock advances forward only (asked {step_us} us)")
        self._us += step_us
        self._mono += step_us / 1_000_000

    def set(self, us: int) -> None:
        """Step the wall clock to ``us`` (either way); the monotonic clock does not move."""
        self._us = int(us)
