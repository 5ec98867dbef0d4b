"""The disk budget and quarantine watches raise (and clear) a critical edge-box alarm."""

from __future__ import annotations

import asyncio

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.clock import now_us
from gmp_edge.collector.reading import Quality, Reading
from gmp_edge.edge.forwarding import store_bytes, watch_disk_budget
from gmp_edge.edge.service import EdgeService
from gmp_edge.historian.store import Store
from gmp_edge.monitoring.engine import Books, MonitoringEngine
from tests.waiting import until

from .conftest import TEMP, small_plant

# the watch looks again only this long after a check: within a test it checks exactly once
ONCE_S = 3600


async def test_disk_budget_high_water_raises_and_clears_a_critical_alarm(tmp_path):
    cfg, sha = small_plant().load(tmp_path)
    store = Store(cfg.store.path)
    EdgeService(cfg, sha, store)
    store.commit([Reading(TEMP, float(i), Quality.GOOD, now_us() + i) for i in range(5000)])
    trail = AuditTrail(cfg.store.path)
    books = Books.open(trail)
    engine = MonitoringEngine(cfg, sha, store, books)
    engine.start()
    used = store_bytes(store)
    assert used > 0

    def alarms() -> list:
        """The box's alarms, read between the engine's steps (as the API reads them)."""
        with engine.lock:
            return books.alarms.all()

    stop = asyncio.Event()
    # a budget the store already exceeds 80 % of: the alarm is raised at the first check
    task = asyncio.create_task(watch_disk_budget(store, engine, int(used / 0.9), stop, ONCE_S))
    (alarm,) = await until(alarms, what="the disk budget alarm")
    assert alarm.priority.value == "critical" and alarm.tag.endswith("/edge/box/store/disk_budget")
    assert alarm.state.value == "unacknowledged" and alarm.value_at_trip == float(used)
    assert books.alarms.active() == [alarm]
    stop.set()
    await task
    # a generous budget: the condition clears
    stop = asyncio.Event()
    task = asyncio.create_task(watch_disk_budget(store, engine, used * 10, stop, ONCE_S))
    await until(lambda: not alarms()[0].condition_active, what="the alarm clears")
    stop.set()
    await task
    (alarm,) = books.alarms.all()
    assert alarm.condition_active is False
    actions = [e.action for e in trail.entries(record_type="alarm")]
    assert actions == ["alarm.condition_active", "alarm.condition_cleared"]
    books.close()
    trail.close()
    store.close()
