"""Virtual time for async tests: sleeps and timeouts take no real time.

Two ways in. :class:`VirtualClock` is handed to code that takes a ``clock`` and a ``sleep``
(``await clock.advance(seconds)`` wakes every sleeper that falls due, in order).
:func:`virtual_time` runs a whole test on a :class:`VirtualTimeLoop`, an event loop whose
clock jumps to the next timer whenever nothing is ready, for code that sleeps with asyncio
itself. Nothing waits on real time, so tests are fast and exact.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import selectors
from collections.abc import Awaitable, Callable
from typing import Any

START = 1000.0  # virtual loop time at the start of every test
HORIZON_S = 7 * 86_400  # a test that runs away in virtual time stops here


class VirtualClock:
    """Monotonic seconds that move only when the test calls :meth:`advance` (or :meth:`pass_`)."""

    def __init__(self, start: float = START):
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


class _InstantSelector(selectors.DefaultSelector):
    """Never blocks: when nothing is ready, it advances the loop's clock to the next timer."""

    def __init__(self, advance: Callable[[float], None]):
        super().__init__()
        self._advance = advance

    def select(self, timeout: float | None = None) -> list[Any]:
        events = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            raise RuntimeError(
                "virtual time: nothing ready, nothing scheduled; the test would hang"
            )
        self._advance(timeout)
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on a virtual clock: sleeps and timeouts take no real time."""

    def __init__(self) -> None:
        self._now = START
        super().__init__(_InstantSelector(self._advance))

    def time(self) -> float:
        return self._now

    def _advance(self, seconds: float) -> None:
        self._now += seconds
        if self._now - START > HORIZON_S:
            raise RuntimeError("virtual time ran past a week: the test never ends")


def virtual_time(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test on a fresh :class:`VirtualTimeLoop`; fail if it leaves tasks behind.

    The runner cancels whatever a failing test left running and closes the loop.
    """

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        async def checked() -> None:
            await test(*args, **kwargs)
            me = asyncio.current_task()
            left = [t for t in asyncio.all_tasks() if t is not me]
            assert not left, f"tasks left behind: {left}"

        with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
            runner.run(checked())

    return wrapper
