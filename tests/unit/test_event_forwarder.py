"""The event forwarder (alarm transitions, deviation events) isolates what the destination
refuses, audits each refused event with its line, and backs off while asked to retry."""

from __future__ import annotations

import asyncio

import pytest

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.historian.events import EventForwarder
from gmp_edge.historian.forwarder import SendResult, send_bisecting
from gmp_edge.historian.store import Store
from gmp_edge.retry import Backoff

T0 = 1_790_000_000_000_000


class ScriptedSink:
    """Refuses a whole request holding a line with the marker (as InfluxDB does)."""

    name = "scripted"

    def __init__(self, poison: str = "POISON", name_bad: bool = False):
        self.poison, self.name_bad = poison, name_bad
        self.stored: list[str] = []
        self.calls = 0
        self.retries_left = 0
        self.want = 0
        self.stored_all = asyncio.Event()

    async def send(self, lines: list[str]) -> SendResult:
        self.calls += 1
        if self.retries_left:
            self.retries_left -= 1
            return SendResult.retry(None, "HTTP 503 busy")
        bad = tuple(i for i, line in enumerate(lines) if self.poison in line)
        if bad:
            return SendResult.reject("field type conflict", bad if self.name_bad else None)
        self.stored.extend(lines)
        if self.want and len(self.stored) >= self.want:
            self.stored_all.set()
        return SendResult.ok()


@pytest.fixture
def box(tmp_path):
    store = Store(tmp_path / "edge.db")
    trail = AuditTrail(store.path)
    yield store, trail
    trail.close()
    store.close()


def deviation_events(trail: AuditTrail, n: int, poisoned: set[int]) -> None:
    for i in range(n):
        actor = "POISON" if i in poisoned else f"qa{i}"
        trail.append(
            actor, "deviation.raise", "deviation", f"DEV-{i}", "", None, {"status": "open"}, T0 + i
        )


def refused_entries(trail: AuditTrail):
    return [e for e in trail.entries(record_type="destination") if e.action == "forward.refused"]


@pytest.mark.parametrize("name_bad", [False, True])
async def test_refused_events_are_isolated_and_each_audited_with_its_line(box, name_bad):
    store, trail = box
    poisoned = {3, 40, 41, 99}
    deviation_events(trail, 100, poisoned)
    sink = ScriptedSink(name_bad=name_bad)
    fwd = EventForwarder(store, trail, sink, "influxdb", batch_size=1000)
    sent = await fwd.drain_once()
    # before the fix the whole batch of 100 was acknowledged unsent and 20 lines audited
    assert sent == 96 and len(sink.stored) == 96
    assert not any("POISON" in line for line in sink.stored)
    refused = refused_entries(trail)
    assert len(refused) == 4
    assert all(e.reason == "field type conflict" and "POISON" in e.new["line"] for e in refused)
    assert sorted(e.new["id"] for e in refused) == sorted(
        e.seq for e in trail.entries(record_type="deviation") if e.actor == "POISON"
    )
    last_deviation = max(e.seq for e in trail.entries(record_type="deviation"))
    assert store.outbox_cursor("influxdb", "deviation_events") == last_deviation
    assert fwd.status()["refused"] == 4 and fwd.status()["sent"] == 96
    assert await fwd.drain_once() == 0  # nothing sent twice, nothing audited twice
    assert len(refused_entries(trail)) == 4


async def test_a_retry_keeps_the_batch_and_backs_off(box):
    store, trail = box
    deviation_events(trail, 10, set())
    sink = ScriptedSink()
    sink.retries_left, sink.want = 3, 10
    fwd = EventForwarder(store, trail, sink, "influxdb", backoff=Backoff(0.01, 0.04))
    assert await fwd.drain_once() == 0
    assert fwd.retry is not None and fwd.status()["failing"] is True
    assert store.outbox_cursor("influxdb", "deviation_events") == 0
    delays: list[float] = []
    real_next = fwd.backoff.next_delay

    def recorded() -> float:
        delays.append(real_next())
        return delays[-1]

    fwd.backoff.next_delay = recorded  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(fwd.run(stop))
    await asyncio.wait_for(sink.stored_all.wait(), 30)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert len(sink.stored) == 10 and not fwd.status()["failing"]
    assert delays == [0.01, 0.02]  # it waited, and longer the second time it was refused
    assert refused_entries(trail) == []


async def test_bisection_finds_each_poison_line():
    lines = [f"l{i}" + (" POISON" if i in (0, 7, 8, 63) else "") for i in range(64)]
    sink = ScriptedSink()
    d = await send_bisecting(sink.send, lines)
    assert sorted(i for i, _ in d.refused) == [0, 7, 8, 63]
    assert sorted(d.delivered) == [i for i in range(64) if i not in (0, 7, 8, 63)]
    assert d.retry is None and d.rejects >= 4


def test_alarm_event_points_carry_the_trip_value_and_limit():
    """The engine writes ``value_at_trip``/``limit_at_trip`` on an activation (the points
    had neither before) and ``value`` on a clear."""
    import json

    from gmp_edge.alarms import machine
    from gmp_edge.alarms.model import ConditionKind, Priority
    from gmp_edge.historian.events import _alarm_line

    tag = "acme/solid-dose/compression/trh-01/temperature"
    alarm = machine.new_alarm(f"{tag}#action_high", tag, ConditionKind.ACTION_HIGH, Priority.HIGH)
    alarm, up = machine.activate(alarm, T0, value=24.5, limit=24.0)
    alarm, down = machine.clear(alarm, T0 + 1, value=23.0)
    raised = _alarm_line((1, tag, json.dumps(up.to_dict())))
    cleared = _alarm_line((2, tag, json.dumps(down.to_dict())))
    assert ",value=24.5,limit=24.0 " in raised
    assert ",value=23.0 " in cleared and "limit=" not in cleared
