"""Security probe: refused sign-ins filled the disk with audit rows and the log with tracebacks.

Every 429 from ``POST /api/session`` appended an fsync'd ``signin.rate_limited`` row (245 rows
a second from four clients, a small store full in seconds). Now a client's refusals are
audited per limiter window: its first one at once, the rest counted in memory and summarised
in one entry when the window is over. The log gets one warning line per client and window,
no traceback; a full disk still answers 429.

Time is travelled with time-machine, without ticking, from 20 s into an epoch minute (the
sign-in limiter counts per epoch minute): bursts and the sign-ins after them all happen in
travelled time, never on the real clock.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sqlite3
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import time_machine
import uvicorn

import gmp_edge.api.session_routes as session_routes
from gmp_edge.api.ratelimit import window_start_us
from gmp_edge.api.refusals import MAX_CLIENTS, MAX_DISTINCT, OTHER_CLIENTS, SignInRefusals
from gmp_edge.audit.trail import AuditTrail
from gmp_edge.clock import ManualClock, now_us
from gmp_edge.edge.api_wiring import build_api
from gmp_edge.edge.cli import server_config
from gmp_edge.edge.service import EdgeService
from gmp_edge.historian.store import Store
from gmp_edge.timefmt import iso
from tests.unit.conftest import small_plant

with warnings.catch_warnings():  # starlette asks for httpx2, which is not on PyPI for us yet
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PER_CLIENT = 3  # sign-in attempts a minute per client: a short run of 401s before the 429s
OPENED = "signin.rate_limited"
SUMMARY = "signin.rate_limited.summary"


def ids(prefix: str = "guess") -> list[str]:
    """Twelve user ids (more than a summary names); a prefix per client keeps the clients
    off each other's per-user limit."""
    return [f"{prefix}{i:02d}" for i in range(12)]


IDS = ids()


class Box:
    """The API over a fresh store, with a low per-client sign-in limit."""

    def __init__(self, tmp: Path):
        plant = small_plant().section("api", port=0, signin_attempts_per_minute_per_client=3)
        self.cfg, sha = plant.load(tmp)
        self.store = Store(self.cfg.store.path)
        self.trail = AuditTrail(self.cfg.store.path)
        self.parts = build_api(self.cfg, EdgeService(self.cfg, sha, self.store), self.trail)
        self.app = self.parts.app

    def client(self, address: str = "testclient") -> TestClient:
        return TestClient(self.app, base_url="http://127.0.0.1", client=(address, 50000))

    def entries(self, action: str):
        return [e for e in self.trail.entries() if e.action == action]

    def close(self) -> None:
        self.parts.close()
        self.trail.close()
        self.store.close()


@pytest.fixture
def box(tmp_path):
    b = Box(tmp_path)
    yield b
    b.close()


def _mid_minute() -> datetime:
    # 20 s into the next epoch minute: forward only, so nothing recorded earlier comes later
    return datetime.fromtimestamp((time.time() // 60 + 1) * 60 + 20, UTC)


def _burst(c, refusals: int, step_s: float, clock, users: list[str] = IDS) -> list[int]:
    """PER_CLIENT 401s, then ``refusals`` 429s (checked, with Retry-After), ``step_s`` apart."""
    codes = []
    for i in range(PER_CLIENT + refusals):
        r = c.post("/api/session", json={"user_id": users[i % len(users)], "password": "x"})
        codes.append(r.status_code)
        if r.status_code == 429:
            assert 1 <= int(r.headers["retry-after"]) <= 60
        clock.shift(step_s)
    assert codes == [401] * PER_CLIENT + [429] * refusals
    return codes


def _app_records(caplog) -> list[logging.LogRecord]:
    # httpx logs each request the test client sends: the client's line, not the service's
    return [r for r in caplog.records if r.name != "httpx"]


def test_a_burst_of_200_refusals_is_one_entry_at_once_and_one_summary_after_the_window(box):
    with time_machine.travel(_mid_minute(), tick=False) as clock:
        start = now_us()
        window = window_start_us(start, 60)
        c = box.client()
        _burst(c, 200, 0.1, clock)  # 20.3 s: all inside the minute
        opened = box.entries(OPENED)
        assert len(opened) == 1, len(opened)  # the attack shows at once
        assert opened[0].actor == "client:testclient" and opened[0].record_id == IDS[PER_CLIENT]
        assert box.entries(SUMMARY) == []  # the rest only counted, in memory
        clock.shift(2 * 60)  # the window is over (and the limiter has forgotten the burst)
        r = c.post("/api/session", json={"user_id": "late", "password": "x"})
        assert r.status_code == 401  # any sign-in after the window writes its summary
    [summary] = box.entries(SUMMARY)
    assert len(box.entries(OPENED)) == 1
    assert summary.actor == "client:testclient"
    first_us = start + round(PER_CLIENT * 0.1 * 1e6)
    assert summary.new == {
        "window_start": iso(window),
        "window_end": iso(window + 60_000_000),
        "refused": 200,
        "first": iso(first_us),
        "last": iso(first_us + round(199 * 0.1 * 1e6)),
        "user_ids": [IDS[(PER_CLIENT + i) % len(IDS)] for i in range(10)],
        "distinct_user_ids": {"count": 12, "at_least": False},
    }
    assert "200 sign-in attempts" in summary.reason


def test_several_clients_give_one_entry_each_and_a_summary_each(box):
    clients = [f"198.51.100.{i}" for i in range(4)]
    with time_machine.travel(_mid_minute(), tick=False) as clock:
        for n, address in enumerate(clients):
            _burst(box.client(address), 50, 0.01, clock, ids(f"c{n}."))
        opened = box.entries(OPENED)
        assert sorted(e.actor for e in opened) == [f"client:{a}" for a in clients]
        assert session_routes.flush_signin_refusals(box.app) == 4  # as at shutdown
        assert session_routes.flush_signin_refusals(box.app) == 0  # nothing twice
    summaries = box.entries(SUMMARY)
    assert sorted(e.actor for e in summaries) == [f"client:{a}" for a in clients]
    assert {e.new["refused"] for e in summaries} == {50}


def test_the_log_has_one_line_per_client_and_window_and_no_traceback(box, caplog):
    caplog.set_level(logging.INFO)  # what the service logs (gmp-edge run: INFO)
    clients = [f"198.51.100.{i}" for i in range(4)]
    with time_machine.travel(_mid_minute(), tick=False) as clock:
        for n, address in enumerate(clients):
            _burst(box.client(address), 100, 0.01, clock, ids(f"c{n}."))
        records = _app_records(caplog)
        assert [r.levelname for r in records] == ["WARNING"] * 4, [r.getMessage() for r in records]
        assert {clients[i] in r.getMessage() for i, r in enumerate(records)} == {True}
        clock.shift(60)
        box.client().post("/api/session", json={"user_id": "late", "password": "x"})
    records = _app_records(caplog)
    assert len(records) == 8  # and one summary line each when the window is over
    assert all(r.exc_info is None and r.exc_text is None for r in caplog.records)
    assert "Traceback" not in caplog.text


def test_a_full_disk_still_answers_429_and_logs_one_line(box, caplog, monkeypatch):
    caplog.set_level(logging.INFO)
    with time_machine.travel(_mid_minute(), tick=False):
        c = box.client()
        for user in IDS[:PER_CLIENT]:
            assert (
                c.post("/api/session", json={"user_id": user, "password": "x"}).status_code == 401
            )

        def full(*args, **kwargs):
            raise sqlite3.OperationalError("database or disk is full")

        with monkeypatch.context() as m:
            m.setattr(box.trail, "append", full)
            for _ in range(50):
                r = c.post("/api/session", json={"user_id": "olga", "password": "x"})
                assert r.status_code == 429 and "retry-after" in r.headers
            errors = [r for r in _app_records(caplog) if r.levelno >= logging.ERROR]
            assert len(errors) == 1 and "disk is full" in errors[0].getMessage()
        assert box.entries(OPENED) == []
        assert session_routes.flush_signin_refusals(box.app) == 1  # the disk has room again
    [summary] = box.entries(SUMMARY)
    assert summary.new["refused"] == 50  # the refusal whose entry failed is in the count
    assert "Traceback" not in caplog.text and len(_app_records(caplog)) <= 3


async def test_through_uvicorn_as_the_service_runs_it_refusals_log_no_traceback(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    box = Box(tmp_path)
    caplog.clear()  # the store's schema lines, logged as it opened
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    try:
        with time_machine.travel(_mid_minute(), tick=False):
            server = uvicorn.Server(server_config(box.cfg, box.app))
            task = asyncio.create_task(server.serve(sockets=[sock]))
            try:
                while not server.started:
                    await asyncio.sleep(0.01)
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                    codes = [
                        (
                            await client.post(
                                "/api/session", json={"user_id": IDS[i % 12], "password": "x"}
                            )
                        ).status_code
                        for i in range(PER_CLIENT + 30)
                    ]
            finally:
                server.should_exit = True
                await task
        assert codes == [401] * PER_CLIENT + [429] * 30
        assert len(box.entries(OPENED)) == 1
        records = _app_records(caplog)
        assert [r.levelname for r in records] == ["WARNING"], [r.getMessage() for r in records]
        assert "Traceback" not in caplog.text
    finally:
        sock.close()
        box.close()


# --- the tally itself, on a manual clock ---------------------------------------------------

T0 = 1_800_000_000_000_000 + 20_000_000  # 20 s into an epoch minute (2027-01-15T08:00:20Z)


@pytest.fixture
def trail(tmp_path):
    t = AuditTrail(tmp_path / "audit.db")
    yield t
    t.close()


def test_the_next_windows_first_refusal_closes_the_last_window(trail):
    clock = ManualClock(T0)
    refusals = SignInRefusals(trail, 60, clock)
    for _ in range(30):
        refusals.refused("10.0.0.1", "qa", 40)
        clock.advance(1)  # to 08:00:50, still the first minute
    refusals.refused("10.0.0.2", "qa", 40)  # refused once: its entry at once says it all
    clock.advance(20)  # 08:01:10: the minute is over, seen at the next refusal
    refusals.refused("10.0.0.1", "qa", 50)
    actions = [(e.actor, e.action) for e in trail.entries()]
    assert actions == [
        ("client:10.0.0.1", OPENED),
        ("client:10.0.0.2", OPENED),
        ("client:10.0.0.1", SUMMARY),
        ("client:10.0.0.1", OPENED),  # the new window's first refusal, at once again
    ]
    assert trail.entries()[2].new["refused"] == 30


def test_a_hostile_set_of_clients_is_held_in_bounded_memory(trail):
    clock = ManualClock(T0)
    refusals = SignInRefusals(trail, 60, clock)
    clients = [f"2001:db8::{i:x}" for i in range(1000)]
    for round_ in range(2):
        for i, client in enumerate(clients):
            refusals.refused(client, f"u{round_}.{i}", 30)
    assert refusals.tallied() == MAX_CLIENTS + 1  # one each, and the rest together
    opened = [e for e in trail.entries() if e.action == OPENED]
    assert len(opened) == MAX_CLIENTS + 1 and opened[-1].actor == OTHER_CLIENTS
    assert refusals.flush() == MAX_CLIENTS + 1
    assert refusals.tallied() == 0
    others = [e for e in trail.entries() if e.action == SUMMARY and e.actor == OTHER_CLIENTS]
    assert others[0].new["refused"] == 2 * (1000 - MAX_CLIENTS)
    assert others[0].new["clients"] == {"count": MAX_DISTINCT, "at_least": True}
    assert others[0].new["distinct_user_ids"] == {"count": MAX_DISTINCT, "at_least": True}
    assert len(others[0].new["user_ids"]) == 10
