"""A virtual clock for async tests: sleeps take no real time and the test moves time on.

Give code under test ``clock.time`` as its monotonic clock and ``clock.sleep`` as its sleep;
then ``await clock.advance(seconds)`` wakes every sleeper that falls due, in order, letting
the event loop run in between. Nothing waits on real time, so tests are fast and exact.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools


class VirtualClock:
    """Monotonic seconds that move only when the test calls :meth:`advance` (or :meth:`pass_`)."""

    def __init__(self, start: float = 1000.0):
        self.now = start
        self.sleeps: list[float] = []  # every sleep asked for, in order
        self._due: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        """The current virtual time (a ``clock`` for the code under test)."""
        return self.now

    async def sleep(self, seconds: float) -> None:
        """A ``sleep`` for the code under test: returns when virtual time reaches its end."""
        self.sleeps.append(seconds)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._due, (self.now + max(0.0, seconds), next(self._seq), fut))
        await fut

    def pass_(self, seconds: float) -> None:
        """Move time on without waking anyone (work that takes time inside a tick)."""
        self.now += seconds

    async def settle(self) -> None:
        """Let every task that can run do so before time moves on."""
        for _ in range(50):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move time on by ``seconds``, waking each sleeper at its own due time."""
        end = self.now + seconds
        await self.settle()
        while self._due and self._due[0][0] <= end:
            due, _, fut = heapq.heappop(self._due)
            if fut.done():  # cancelled sleeper
                continue
            self.now = max(self.now, due)
            fut.set_result(None)
            await self.settle()
        self.now = max(self.now, end)
