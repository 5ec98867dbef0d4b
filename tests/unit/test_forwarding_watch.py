"""The disk budget and quarantine watches raise (and clear) a critical edge-box alarm."""

from __future__ import annotations

import asyncio
from pathlib import Path

from audit.trail import AuditTrail
from collector.reading import Quality, Reading, now_us
from edge.config import load_config
from edge.forwarding import store_bytes, watch_disk_budget
from edge.service import EdgeService
from historian.store import Store
from monitoring.engine import Books, MonitoringEngine

EXAMPLE = Path(__file__).parents[2] / "examples" / "plant.toml"


async def test_disk_budget_high_water_raises_and_clears_a_critical_alarm(tmp_path):
    cfg, sha = load_config(EXAMPLE)
    db = tmp_path / "s.db"
    cfg = cfg.model_copy(update={"store": cfg.store.model_copy(update={"path": db})})
    store = Store(db)
    EdgeService(cfg, sha, store)
    tag = cfg.tags[0].path
    store.commit([Reading(tag, float(i), Quality.GOOD, now_us() + i) for i in range(5000)])
    trail = AuditTrail(db)
    books = Books.open(trail)
    engine = MonitoringEngine(cfg, sha, store, books)
    engine.start()
    used = store_bytes(store)
    assert used > 0
    stop = asyncio.Event()
    # a budget the store already exceeds 80 % of: the alarm is raised at the first check
    task = asyncio.create_task(watch_disk_budget(store, engine, int(used / 0.9), stop, 0.05))
    await asyncio.sleep(0.3)
    (alarm,) = books.alarms.active()
    assert alarm.priority.value == "critical" and alarm.tag.endswith("/edge/box/store/disk_budget")
    assert alarm.state.value == "unacknowledged" and alarm.value_at_trip == float(used)
    stop.set()
    await task
    # a generous budget: the condition clears
    stop = asyncio.Event()
    task = asyncio.create_task(watch_disk_budget(store, engine, used * 10, stop, 0.05))
    await asyncio.sleep(0.3)
    stop.set()
    await task
    (alarm,) = books.alarms.all()
    assert alarm.condition_active is False
    actions = [e.action for e in trail.entries(record_type="alarm")]
    assert actions == ["alarm.condition_active", "alarm.condition_cleared"]
    books.close()
    trail.close()
    store.close()
