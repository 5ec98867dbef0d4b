"""GET /api/health, /metrics and the page tell one verdict with its reasons (issue 13 item 9):
failed when the record is at risk, degraded when part of it is missing or less trustworthy,
and the plant's alarms beside it, never folded into it."""

from __future__ import annotations

import asyncio

import pytest

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.collector.reading import Cause, Reading
from gmp_edge.edge.api_wiring import build_api
from gmp_edge.edge.clock_status import ClockSync
from gmp_edge.edge.runtime import ServiceRuntime
from gmp_edge.edge.service import EdgeService
from gmp_edge.historian.store import Store
from gmp_edge.identity.roles import Role
from gmp_edge.supervise import TaskFailure

from .conftest import RH, small_plant
from .test_api_metrics import TestClient, parsed

NOW = 1_790_000_000_000_000


def synced(tmp_path, synchronised: bool | None = True, **health):
    builder = small_plant()
    if health:
        builder.section("health", **health)
    cfg, sha = builder.load(tmp_path)
    store = Store(cfg.store.path)
    trail = AuditTrail(cfg.store.path)
    service = EdgeService(cfg, sha, store)
    service.started_us = NOW
    for d in service.drivers:  # every device connected unless a case says otherwise
        d.status.state = d.status.state.CONNECTED
    runtime = ServiceRuntime(service, ClockSync(ask=lambda: {"synchronized": synchronised}))
    return cfg, store, trail, service, runtime


def bad(service: EdgeService, polls: int) -> None:
    for i in range(polls):
        r = Reading.bad(RH, NOW + i * 1_000_000, "FC04 not supported by this device", Cause.DEVICE)
        asyncio.run(service.put([r]))


CASES = [
    # (what happens, health status, reason codes)
    ("nothing", "ok", []),
    ("store", "failed", ["store_failing"]),
    ("task", "failed", ["task_died"]),
    ("device", "degraded", ["device_down"]),
    ("tag-bad-2-polls", "ok", []),  # under the 3 polls of [health] bad_tag_polls
    ("tag-bad-3-polls", "degraded", ["tag_bad"]),
    ("clock-unsynchronised", "degraded", ["clock_unsynchronised"]),
    ("clock-unknown", "degraded", ["clock_unknown"]),
]


@pytest.mark.parametrize(("case", "status", "codes"), CASES)
def test_health_says_why_and_metrics_agree(tmp_path, case, status, codes):
    sync = {"clock-unsynchronised": False, "clock-unknown": None}.get(case, True)
    cfg, store, trail, service, runtime = synced(tmp_path, synchronised=sync)
    if case == "store":
        service.health.error = "disk I/O error"
    elif case == "task":
        service.task_failed(TaskFailure("committer", "OSError: disk full", NOW))
    elif case == "device":
        service.drivers[0].status.state = service.drivers[0].status.state.DISCONNECTED
        service.drivers[0].status.last_error = "connection refused"
    elif case.startswith("tag-bad"):
        bad(service, int(case.split("-")[2]))
    parts = build_api(cfg, service, trail, runtime=runtime)
    try:
        parts.directory.create_first_administrator("admin", "Ada Admin", "Vault-Keeper-2026!")
        token = parts.directory.create_token("admin", "scrape", Role.VIEWER, "health test")
        c = TestClient(parts.app, base_url="http://127.0.0.1")
        c.headers["Authorization"] = f"Bearer {token}"
        h = c.get("/api/health").json()
        metrics = parsed(c.get("/metrics").text)
    finally:
        parts.close()
        trail.close()
        store.close()
    assert h["status"] == status, h["reasons"]
    assert [r["code"] for r in h["reasons"]] == codes
    assert all(r["text"] for r in h["reasons"])
    assert h["alarms"] == {"active": 0, "unacknowledged": 0}  # beside health, not in it
    current = {s[1]["status"]: s[2] for s in metrics["gmp_edge_health"][2]}
    assert current == {k: float(k == status) for k in ("starting", "ok", "degraded", "failed")}


def test_a_validated_clock_the_os_cannot_report_can_be_declared(tmp_path):
    cfg, store, trail, service, runtime = synced(
        tmp_path, synchronised=None, clock_check="not_reported"
    )
    try:
        inputs = runtime.health_inputs(NOW)
    finally:
        trail.close()
        store.close()
    assert inputs.clock_check == "not_reported" and inputs.clock_synchronised is None


def test_missed_polls_slow_commits_and_a_filling_buffer_are_not_ok(tmp_path):
    """A service at twice its capacity answered 'ok' (issue 15): now each is a reason."""
    cfg, store, trail, service, runtime = synced(tmp_path)
    try:
        assert runtime.health_inputs(NOW).missed_polls == [
            (d.status.device_id, 0)
            for d in sorted(service.drivers, key=lambda d: d.status.device_id)
        ]
        service.drivers[0].status.missed_polls += 4
        service.health.last_commit_ms = 2500.0
        service.health.pending = service.max_pending // 2 + 1
        inputs = runtime.health_inputs(NOW + 20_000_000)
        from gmp_edge.services.health import assess_health

        codes = [r.code for r in assess_health(inputs).reasons]
        assert codes == ["polls_missed", "commits_slow", "buffer_filling"]
        assert (service.drivers[0].status.device_id, 4) in inputs.missed_polls
        # a minute later with no more missed, the device is fine again
        later = runtime.health_inputs(NOW + 90_000_000)
        assert all(n == 0 for _, n in runtime.health_inputs(NOW + 200_000_000).missed_polls)
        assert later.missed_polls_span_s <= 90
    finally:
        trail.close()
        store.close()


def test_recent_counts_speak_of_the_window_only():
    from gmp_edge.edge.runtime import RecentCounts

    rc = RecentCounts(60_000_000)
    rc.seed(0, {"a": 0})
    assert rc.recent(10_000_000, {"a": 5}) == ([("a", 5)], 10.0)
    assert rc.recent(50_000_000, {"a": 7}) == ([("a", 7)], 50.0)
    # the samples before the window are let go: growth since the newest one before it
    growth, span = rc.recent(100_000_000, {"a": 7})
    assert growth == [("a", 2)] and span == 90.0
    growth, span = rc.recent(200_000_000, {"a": 7, "b": 1})
    assert growth == [("a", 0), ("b", 1)] and span == 100.0
