"""A full disk, as the probe filled it: the API answered 500 with a traceback per request
and no alarm was raised. Here the store lives on a real, small file system (a tmpfs mounted
for the test), the disk is filled to the last byte, and every write must answer 503 with the
reason, write nothing, log without tracebacks, and work again once space is freed; the
free-space watch raises a critical alarm before it comes to that.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import subprocess
from pathlib import Path

import pytest

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.edge.forwarding import free_bytes, watch_free_disk
from gmp_edge.edge.service import EdgeService
from gmp_edge.historian.store import Store
from gmp_edge.identity.roles import Role
from gmp_edge.monitoring.engine import Books, MonitoringEngine
from gmp_edge.services.integrity import verify_store
from tests.apibox import ApiBox
from tests.unit.conftest import COMPRESSION, small_plant
from tests.waiting import until

ONCE_S = 3600  # the watch checks once within a test


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs: a real file system that really fills up (needs root, as CI has)."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("the full-disk tests mount a tmpfs and need root")
        pytest.skip("needs root to mount a tmpfs")
    where = tmp_path / "disk"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(path: Path) -> Path:
    """Write zeros until the file system refuses another byte."""
    filler = path / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
        while True:  # the last partial chunk
            try:
                f.write(b"\0" * 512)
            except OSError:
                break
    return filler


def test_a_full_disk_answers_503_writes_nothing_and_recovers(small_disk, caplog):
    box = ApiBox(small_disk)
    try:
        box.person("op", Role.OPERATOR)
        c = box.signed_in("op")
        filler = fill(small_disk)
        caplog.set_level(logging.INFO)
        answers: list[int] = []
        refused = None
        # a write may still land in pages SQLite already owns; keep writing until the
        # disk refuses (a bounded number of tries: 16 MiB holds far fewer batches)
        for n in range(5000):
            bid = f"B-FULL-{n:04d}"
            r = c.post(
                "/api/batches",
                json={"id": bid, "product": "P", "rooms": [COMPRESSION], "reason": "fill"},
            )
            answers.append(r.status_code)
            if r.status_code != 201:
                refused = (bid, r)
                break
            r = c.post(f"/api/batches/{bid}/end", json={"reason": "fill"})
            answers.append(r.status_code)
            if r.status_code != 200:
                refused = (bid, r)
                break
        assert refused is not None, "the disk never filled"
        bid, r = refused
        assert r.status_code == 503, (r.status_code, r.text)
        assert "disk is full" in r.json()["detail"] and r.headers["Retry-After"]
        assert 500 not in answers
        # more requests against the full disk: 503 each, no traceback, few log lines
        for _ in range(50):
            r = c.post("/api/batches", json={"id": "B-X", "product": "P", "rooms": [COMPRESSION]})
            assert r.status_code == 503
        ours = [rec for rec in caplog.records if rec.name.startswith("gmp_edge")]
        assert all(rec.exc_info is None for rec in ours)
        assert len([rec for rec in ours if "disk is full" in rec.getMessage()]) == 1
        # space freed: the box writes again, and the record is whole
        filler.unlink()
        r = c.post("/api/batches", json={"id": "B-AFTER", "product": "P", "rooms": [COMPRESSION]})
        assert r.status_code == 201, r.text
        ids = [b["id"] for b in c.get("/api/batches").json()]
        assert "B-AFTER" in ids and "B-X" not in ids
        verdict = verify_store(box.db)
        # chains and SQLite's own check are clean (no anchors: this store never served)
        assert verdict.sqlite == [] and verdict.audit_break is None
        assert [p for p in verdict.problems() if "box key" not in p] == []
    finally:
        box.close()


async def test_low_free_space_raises_and_clears_a_critical_alarm(small_disk):
    cfg, sha = small_plant().load(small_disk)
    store = Store(cfg.store.path)
    EdgeService(cfg, sha, store)
    trail = AuditTrail(cfg.store.path)
    books = Books.open(trail)
    engine = MonitoringEngine(cfg, sha, store, books)
    engine.start()

    def alarms() -> list:
        with engine.lock:
            return books.alarms.all()

    # 16 MiB disk, minimum 12 MiB: already below once a third of it is used
    minimum = 12 * 2**20
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * (6 * 2**20))
    assert free_bytes(store) < minimum
    stop = asyncio.Event()
    task = asyncio.create_task(watch_free_disk(store, engine, minimum, stop, ONCE_S))
    (alarm,) = await until(alarms, what="the free-disk alarm")
    assert alarm.priority.value == "critical" and alarm.tag.endswith("/edge/box/store/free_disk")
    assert alarm.limit_at_trip == float(minimum) and alarm.value_at_trip < minimum
    stop.set()
    await task
    # space freed above 1.2x the minimum: the alarm clears
    ballast.unlink()
    stop = asyncio.Event()
    task = asyncio.create_task(watch_free_disk(store, engine, 2**20, stop, ONCE_S))
    await until(lambda: not alarms()[0].condition_active, what="the alarm clears")
    stop.set()
    await task
    actions = [e.action for e in trail.entries(record_type="alarm")]
    assert actions == ["alarm.condition_active", "alarm.condition_cleared"]
    books.close()
    trail.close()
    store.close()
