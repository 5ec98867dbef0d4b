"""Run a coroutine function every interval until stopped: one loop for every periodic job.

The schedule is kept on a monotonic clock (``start + n * interval``), so the time a tick
takes does not add up into drift; a tick that overruns is followed at once by the next, and
one that falls more than a whole interval behind starts the schedule again from now instead
of bursting to catch up. An exception in one tick is logged and counted and the next tick
runs on schedule. Stopping never interrupts a tick: it ends the wait, or lets the running
tick finish, and returns when the loop is done. Imports nothing of ours but
:mod:`gmp_edge.errors`, so every layer may use it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[object]]


class Periodic:
    """Call ``tick`` every ``interval_s`` seconds until :meth:`stop` or a stop event.

    ``first_at_start`` runs the first tick at once (else one interval after the start);
    ``last_on_stop`` runs one more tick when a stop ends the wait between two ticks (a job
    that flushes on its way out). ``clock`` (monotonic seconds, by default the event loop's)
    and ``sleep`` (by default :func:`asyncio.sleep`) are seams for tests in virtual time.
    ``ticks``, ``errors`` and ``last_error`` count what happened, for health reports.
    """

    def __init__(
        self,
        tick: Callable[[], Awaitable[object]],
        interval_s: float,
        *,
        name: str,
        first_at_start: bool = True,
        last_on_stop: bool = False,
        clock: Clock | None = None,
        sleep: Sleep = asyncio.sleep,
    ):
        if interval_s <= 0:
            raise ValueError(f"{name}: the interval must be > 0, not {interval_s}")
        self.tick, self.interval_s, self.name = tick, interval_s, name
        self.first_at_start, self.last_on_stop = first_at_start, last_on_stop
        self._clock, self._sleep = clock, sleep
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0
        self.errors = 0
        self.last_error: str | None = None

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Tick on schedule until :meth:`stop` is called or ``stop`` (if given) is set."""
        clock = self._clock or asyncio.get_running_loop().time
        events = [self._stop] if stop is None else [self._stop, stop]

        def stopped() -> bool:
            return any(e.is_set() for e in events)

        due = clock()
        if self.first_at_start:
            await self._one_tick()
        while not stopped():
            due += self.interval_s
            delay = due - clock()
            if delay < -self.interval_s:  # fell behind by a whole interval: no burst catch-up
                due, delay = clock(), 0.0
            if await self._wait(max(0.0, delay), events):
                if self.last_on_stop:
                    await self._one_tick()
                return
            await self._one_tick()

    def start(self) -> asyncio.Task[None]:
        """Run in a task of its own (see :meth:`stop`); returns the task."""
        if self._task is not None:
            raise RuntimeError(f"{self.name}: already started")
        self._task = asyncio.create_task(self.run(), name=self.name)
        return self._task

    async def stop(self) -> None:
        """End the loop: the wait ends at once, a running tick is awaited, never cancelled."""
        self._stop.set()
        if self._task is not None:
            # wait for the task without taking on its fate: one cancelled from outside is done
            await asyncio.wait([self._task])
            exc = None if self._task.cancelled() else self._task.exception()
            if exc is not None:
                raise exc

    async def _one_tick(self) -> None:
        try:
            await self.tick()
        except Exception as exc:  # one bad tick must not end the job
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("%s: tick failed", self.name)
        finally:
            self.ticks += 1

    async def _wait(self, seconds: float, events: list[asyncio.Event]) -> bool:
        """Sleep ``seconds`` unless a stop event comes first; True if stopped."""
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        waiters = [asyncio.ensure_future(e.wait()) for e in events]
        try:
            await asyncio.wait([sleeper, *waiters], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for f in (sleeper, *waiters):
                f.cancel()
            # let the cancelled helpers finish so none is left pending
            await asyncio.gather(sleeper, *waiters, return_exceptions=True)
        return any(e.is_set() for e in events)
