"""Issue 14: X-Forwarded-For was believed from loopback (uvicorn's default), so a local process
passed the per-client sign-in limit and wrote a made-up client into the audit trail.

A real uvicorn server on a free loopback port, configured as the service configures it.
"""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
import uvicorn

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.edge.api_wiring import build_api
from gmp_edge.edge.cli import server_config
from gmp_edge.edge.service import EdgeService
from gmp_edge.historian.store import Store
from tests.unit.conftest import small_plant


async def _sign_in_storm(tmp_path, api: dict) -> tuple[list[int], list[str]]:
    plant = small_plant().section("api", port=0, signin_attempts_per_minute_per_client=3, **api)
    cfg, sha = plant.load(tmp_path)
    store = Store(cfg.store.path)
    trail = AuditTrail(cfg.store.path)
    parts = build_api(cfg, EdgeService(cfg, sha, store), trail)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(server_config(cfg, parts.app))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        codes = []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for i in range(5):  # each from a "different client", each for a different user
                r = await client.post(
                    "/api/session",
                    json={"user_id": f"u{i}", "password": "x" * 12},
                    headers={"X-Forwarded-For": f"203.0.113.{i}"},
                )
                codes.append(r.status_code)
        actors = [e.actor for e in trail.entries()]
        return codes, actors
    finally:
        server.should_exit = True
        await task
        sock.close()
        parts.close()
        trail.close()
        store.close()


async def test_forwarded_for_from_loopback_is_ignored_by_default(tmp_path) -> None:
    codes, actors = await _sign_in_storm(tmp_path, {})
    assert codes[:3] == [401, 401, 401] and codes[3:] == [429, 429]  # one client: the peer
    assert not any("203.0.113" in a for a in actors)
    assert "client:127.0.0.1" in actors


async def test_a_named_proxy_is_believed(tmp_path) -> None:
    codes, actors = await _sign_in_storm(tmp_path, {"trusted_proxies": ["127.0.0.1"]})
    assert codes == [401] * 5  # five clients behind the proxy, each under its limit
    assert not any(a == "client:127.0.0.1" for a in actors)


@pytest.mark.parametrize("bad", ["localhost", "300.1.2.3", "10.0.0.0/33"])
def test_a_trusted_proxy_that_is_no_address_is_refused_at_load(tmp_path, bad) -> None:
    from gmp_edge.edge.config import ConfigError

    with pytest.raises(ConfigError, match="trusted_proxies"):
        small_plant().section("api", trusted_proxies=[bad]).load(tmp_path)
