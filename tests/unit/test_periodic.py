"""The periodic-task helper, driven in virtual time (no test waits on the real clock)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from gmp_edge.periodic import Periodic
from tests.virtual_time import VirtualClock

T0 = 1000.0


def make(
    clock: VirtualClock,
    interval: float = 1.0,
    work: Callable[[int], float] = lambda n: 0.0,
    **kw: bool,
) -> tuple[Periodic, list[float]]:
    """A Periodic whose n-th tick (from 0) records its start and takes ``work(n)`` seconds."""
    starts: list[float] = []

    async def tick() -> None:
        starts.append(clock.time())
        clock.pass_(work(len(starts) - 1))

    return Periodic(tick, interval, name="t", clock=clock.time, sleep=clock.sleep, **kw), starts


async def test_ticks_keep_the_schedule_however_long_each_takes() -> None:
    clock = VirtualClock(T0)
    p, starts = make(clock, work=lambda n: 0.3)
    p.start()
    await clock.advance(4.0)
    await p.stop()
    assert starts == pytest.approx([T0, T0 + 1, T0 + 2, T0 + 3, T0 + 4])
    assert clock.sleeps[:4] == pytest.approx([0.7] * 4)
    assert p.ticks == 5 and p.errors == 0


async def test_first_tick_after_one_interval_when_asked() -> None:
    clock = VirtualClock(T0)
    p, starts = make(clock, first_at_start=False)
    p.start()
    await clock.advance(0.999)
    assert starts == []
    await clock.advance(2.001)
    await p.stop()
    assert starts == pytest.approx([T0 + 1, T0 + 2, T0 + 3])


@pytest.mark.parametrize(
    ("slow_s", "want"),
    [
        # late by less than an interval: the next tick runs at once, the schedule holds
        (1.5, [T0, T0 + 1.5, T0 + 2, T0 + 3, T0 + 4]),
        # late by more: no burst of missed ticks, the schedule starts again from now
        (2.5, [T0, T0 + 2.5, T0 + 3.5]),
    ],
)
async def test_an_overrun_tick_does_not_burst(slow_s: float, want: list[float]) -> None:
    clock = VirtualClock(T0)
    p, starts = make(clock, work=lambda n: slow_s if n == 0 else 0.0)
    p.start()
    await clock.settle()  # the slow first tick has run: the clock is at T0 + slow_s
    await clock.advance(want[-1] + 0.5 - clock.now)
    await p.stop()
    assert starts == pytest.approx(want)


async def test_an_exception_in_one_tick_is_logged_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = VirtualClock(T0)
    calls: list[float] = []

    async def tick() -> None:
        calls.append(clock.time())
        if len(calls) == 2:
            raise OSError("disk full")

    p = Periodic(tick, 10.0, name="anchor", clock=clock.time, sleep=clock.sleep)
    p.start()
    with caplog.at_level(logging.ERROR, logger="gmp_edge.periodic"):
        await clock.advance(30.0)
    await p.stop()
    assert calls == pytest.approx([T0, T0 + 10, T0 + 20, T0 + 30])
    assert p.errors == 1 and p.last_error == "OSError: disk full" and p.ticks == 4
    assert [r.getMessage() for r in caplog.records] == ["anchor: tick failed"]


@pytest.mark.parametrize(("last_on_stop", "ticks"), [(False, 1), (True, 2)])
async def test_stop_ends_the_wait_at_once(last_on_stop: bool, ticks: int) -> None:
    clock = VirtualClock(T0)
    p, starts = make(clock, interval=3600.0, last_on_stop=last_on_stop)
    task = p.start()
    await clock.settle()
    await p.stop()  # no time passes: the hour-long wait must not hold the stop
    assert task.done() and clock.now == T0
    assert starts == [T0] * ticks


async def test_stop_awaits_the_running_tick_and_never_cancels_it() -> None:
    clock = VirtualClock(T0)
    gate = asyncio.Event()
    finished: list[bool] = []

    async def tick() -> None:
        await gate.wait()
        finished.append(True)

    p = Periodic(tick, 1.0, name="t", clock=clock.time, sleep=clock.sleep, last_on_stop=True)
    p.start()
    await clock.settle()  # the first tick is waiting on the gate
    stopping = asyncio.create_task(p.stop())
    await clock.settle()
    assert not stopping.done()
    gate.set()
    await stopping
    # stopped during a tick, not a wait: that tick was the last one
    assert finished == [True] and p.ticks == 1


async def test_an_outside_stop_event_ends_run() -> None:
    clock = VirtualClock(T0)
    p, starts = make(clock)
    stop = asyncio.Event()
    run = asyncio.create_task(p.run(stop))
    await clock.advance(2.0)
    stop.set()
    await run
    assert starts == pytest.approx([T0, T0 + 1, T0 + 2])


async def test_a_stop_set_before_the_start_runs_no_waiting_tick() -> None:
    clock = VirtualClock(T0)
    p, starts = make(clock, first_at_start=False, last_on_stop=True)
    stop = asyncio.Event()
    stop.set()
    await p.run(stop)
    assert starts == []


async def test_the_default_clock_is_the_event_loops() -> None:
    ran = asyncio.Event()

    async def tick() -> None:
        ran.set()

    p = Periodic(tick, 60.0, name="t")
    p.start()
    await ran.wait()
    await p.stop()
    assert p.ticks == 1


async def test_bad_use_is_refused() -> None:
    async def tick() -> None:
        pass

    with pytest.raises(ValueError, match="interval"):
        Periodic(tick, 0, name="t")
    p = Periodic(tick, 1.0, name="t")
    p.start()
    with pytest.raises(RuntimeError, match="already started"):
        p.start()
    await p.stop()


async def test_stop_after_the_task_was_cancelled_returns_quietly() -> None:
    clock = VirtualClock(T0)
    p, _ = make(clock)
    task = p.start()
    await clock.settle()
    task.cancel()
    await p.stop()  # the caller is not cancelled by the task's fate
    assert task.cancelled()
