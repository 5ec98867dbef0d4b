"""The service's long-lived tasks are supervised: one that dies is recorded (for health),
reported to whoever listens (the audit trail in ``serve``) and logged; never silent."""

from __future__ import annotations

import asyncio

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.collector.driver import DeviceStatus
from gmp_edge.edge.lifecycle import audit_task_failure
from gmp_edge.edge.service import EdgeService
from gmp_edge.historian.store import Store
from gmp_edge.supervise import TaskFailure

from .conftest import small_plant


class DyingDriver:
    """A driver with a bug: its loop raises on the first poll."""

    def __init__(self) -> None:
        self.status = DeviceStatus("pc-01", "modbus", "127.0.0.1:502 unit 1")

    async def run(self, sink, stop) -> None:
        raise RuntimeError("decoder bug")


async def run_until_a_failure(svc: EdgeService) -> None:
    """Run the service until a supervised task is reported dead, then stop it."""
    reported = asyncio.Event()
    svc.on_task_failure.append(lambda _: reported.set())
    stop = asyncio.Event()
    run = asyncio.create_task(svc.run(stop))
    try:
        await asyncio.wait_for(reported.wait(), 30)
    finally:
        stop.set()
        await run
        svc.store.close()


async def test_a_driver_that_dies_is_recorded_and_reported(tmp_path):
    # before the fix the driver task died unseen: collection of its tags stopped while
    # health stayed ok, and only stop gathered (and dropped) the exception
    cfg, sha = small_plant().load(tmp_path)
    store = Store(cfg.store.path)
    svc = EdgeService(cfg, sha, store)
    svc.drivers = [DyingDriver()]  # type: ignore[list-item]
    seen: list[TaskFailure] = []
    svc.on_task_failure.append(seen.append)
    await run_until_a_failure(svc)
    (failure,) = seen
    assert failure.task == "driver:pc-01" and failure.reason == "RuntimeError: decoder bug"
    assert svc.task_failures == [failure]


async def test_a_committer_that_returns_early_is_a_failure(tmp_path):
    cfg, sha = small_plant().load(tmp_path)
    store = Store(cfg.store.path)
    svc = EdgeService(cfg, sha, store)
    svc.drivers = []

    async def gives_up(stop) -> None:
        return None

    svc._committer = gives_up  # type: ignore[method-assign]
    await run_until_a_failure(svc)
    assert [(f.task, f.reason) for f in svc.task_failures] == [
        ("committer", "ended on its own while the service was running")
    ]


def test_a_task_failure_is_audited(tmp_path):
    trail = AuditTrail(tmp_path / "edge.db")
    try:
        audit_task_failure(trail, TaskFailure("forward:0", "OSError: disk full", 1_790_000_000))
        (entry,) = trail.entries(record_type="service")
    finally:
        trail.close()
    assert (entry.action, entry.record_id, entry.reason) == (
        "service.task_failed",
        "forward:0",
        "OSError: disk full",
    )
