"""Fixtures for system tests: the project's simulated plant on free loopback ports, and a
plant configuration pointing at it."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import shutil
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.collector.driver import LinkState
from gmp_edge.config import PlantConfig
from gmp_edge.edge.api_wiring import ApiParts, build_api
from gmp_edge.edge.config import parse_config
from gmp_edge.edge.service import EdgeService
from gmp_edge.historian.store import Store
from gmp_edge.identity.roles import Role
from gmp_edge.simulators.plant import SimulatedPlant
from gmp_edge.simulators.spec import parse_spec
from tests.waiting import until

ROOT = Path(__file__).parents[2]
SIM_SPEC = tomllib.loads((ROOT / "examples" / "sim-solid-dose.toml").read_text())
PLANT = tomllib.loads((ROOT / "examples" / "plant.toml").read_text())


def sim_spec_data(sample_time_s: int = 1) -> dict[str, Any]:
    """The example simulated plant on free ports, without its scripted scenario."""
    data = copy.deepcopy(SIM_SPEC)
    data["scenario"] = []
    for ep in data["modbus"]:
        ep["port"] = 0
        for unit in ep["units"]:
            if unit["model"] == "particle_counter":
                unit["sample_time_s"] = sample_time_s
    for ua in data.get("opcua", []):
        ua["port"] = 0
    return data


@pytest.fixture
async def plant():
    """The example plant, running on free ports (1 s particle samples)."""
    async with SimulatedPlant(parse_spec(sim_spec_data())) as p:
        yield p


def plant_config_data(plant: SimulatedPlant, store: Path, **device_overrides: Any) -> dict:
    """The example plant config, aimed at the running simulators."""
    data = copy.deepcopy(PLANT)
    info = plant.ready_info()
    ports = {"15020": info["modbus"]["gw-granulation"], "15021": info["modbus"]["gw-compression"]}
    if not info["opcua"]:  # a Modbus-only plant: leave the press out of the config
        press = {d["id"] for d in data["devices"] if d["protocol"] == "opcua"}
        data["devices"] = [d for d in data["devices"] if d["id"] not in press]
        data["tags"] = [t for t in data["tags"] if t["device"] not in press]
        paths = {t["path"] for t in data["tags"]}
        data["limits"] = [e for e in data.get("limits", []) if e["tag"] in paths]
        for src in data.get("production", []):
            if src.get("state_tag") not in (None, *paths):
                src.pop("state_tag")
                src["state"] = "in_operation"
            if src.get("batch_tag") not in (None, *paths):
                src.pop("batch_tag")
    for d in data["devices"]:
        if d["protocol"] == "modbus":
            d["port"] = ports[str(d["port"])]
            d["poll_interval_s"] = 0.5
            d["timeout_s"] = 0.5
            d["reconnect_min_s"] = 0.2
            d["reconnect_max_s"] = 1.0
        else:
            d["endpoint"] = info["opcua"]["press-01"]
            d["reconnect_min_s"] = 0.2
            d["reconnect_max_s"] = 1.0
        d.update(device_overrides.get(d["id"], {}))
    data["store"] = {"path": str(store), "commit_interval_s": 0.2}
    data["api"] = {"host": "127.0.0.1", "port": 0}
    data.pop("simulation", None)
    # whether this machine's OS can report clock synchronisation is not what these tests
    # are about (a container cannot); the health verdict's clock rules are unit-tested
    data["health"] = {"clock_check": "not_reported"}
    return data


@pytest.fixture
def plant_config(plant, tmp_path) -> PlantConfig:
    """Validated plant config for the running simulators, store in tmp_path."""
    return parse_config(plant_config_data(plant, tmp_path / "store.db"), tmp_path / "plant.toml")


def require_tool(name: str) -> str:
    """A command-line tool the test needs; missing is a failure, never a skip."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (run: make system-deps)")
    return path


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc_today() -> date:
    return datetime.now(UTC).date()


def us(iso: str) -> int:
    """Microseconds since the epoch of an ISO 8601 time with zone."""
    return (datetime.fromisoformat(iso) - EPOCH) // timedelta(microseconds=1)


def dated_from_today(data: dict, today: date) -> date:
    """Every qualification and calibration date moved to well after ``today`` (UTC): nothing
    depends on the day the test runs. Returns the press's qualified-until date."""
    for e in data["equipment"]:
        if "qualified_until" in e:
            e["qualified_until"] = today + timedelta(days=400)
        if "calibration_due" in e:
            e["calibration_due"] = today + timedelta(days=300)
    (press,) = [e for e in data["equipment"] if e["id"] == "press-01"]
    return press["qualified_until"]


ADMIN_PASSWORD = "Vault-Keeper-2026!"
# one person per role, each with this password (set by themselves: no forced change)
PEOPLE_PASSWORD = "People-Pass-2026!"


@dataclass
class Edge:
    """A running edge service with its API: an inspector's client and the parts."""

    client: httpx.AsyncClient
    svc: EdgeService
    parts: ApiParts
    base_url: str
    people: list[httpx.AsyncClient] = field(default_factory=list)

    async def person(self, user_id: str, password: str = PEOPLE_PASSWORD) -> httpx.AsyncClient:
        """A client signed in as ``user_id`` (session cookie + CSRF header); closed with the
        edge at the latest."""
        c = httpx.AsyncClient(base_url=self.base_url, timeout=10)
        self.people.append(c)
        r = await c.post("/api/session", json={"user_id": user_id, "password": password})
        assert r.status_code == 200, r.text
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        return c


def collecting(svc: EdgeService) -> bool:
    """The service runs, every device is connected and every tag has a committed reading."""
    return (
        svc.started_us is not None
        and all(d.state is LinkState.CONNECTED for d in svc.device_statuses())
        and all(svc.store.latest(t.path) is not None for t in svc.cfg.tags)
    )


async def caught_up(edge: Edge, t_us: int) -> None:
    """Wait until nothing stamped before ``t_us`` can still change what the edge shows.

    Every tag has a committed reading stamped at or after ``t_us`` (each device delivers its
    readings in time order, so later ones are later still; a particle counter backfilling
    after an outage is the exception: let it catch up first), and the monitoring engine has
    evaluated every reading committed by then (alarms, excursions and deviations are in).
    """
    store = edge.svc.store

    def newest_past() -> bool:
        for tag in edge.svc.cfg.tags:
            r = store.latest(tag.path)
            if r is None or r.ts_us < t_us:
                return False
        return True

    await until(newest_past, what=f"a reading of every tag stamped after {t_us}")
    last = store.last_reading_id()
    await until(lambda: edge.parts.engine.cursor >= last, what=f"monitoring evaluated {last}")


@contextlib.asynccontextmanager
async def running_edge(cfg: PlantConfig, config_path: str = "") -> AsyncIterator[Edge]:
    """Collection, monitoring and the API on a free port; one person per role (user id =
    role with dots, password PEOPLE_PASSWORD), an administrator, an inspector token.
    Yields once the API serves and the service is :func:`collecting`."""
    store = Store(cfg.store.path)
    trail = AuditTrail(cfg.store.path)
    svc = EdgeService(cfg, "test-sha", store)
    parts = build_api(cfg, svc, trail, config_path=config_path)
    parts.directory.create_first_administrator("admin", "Ada Admin", ADMIN_PASSWORD)
    for role in Role:
        if role is not Role.ADMINISTRATOR:
            uid = role.value.replace("_", ".")
            name = f"Test {role.value.title()}"
            parts.directory.create_user(
                "admin", uid, name, role, PEOPLE_PASSWORD, "test account", must_change=False
            )
    token = parts.directory.create_token("admin", "test-inspector", Role.INSPECTOR, "tests")
    server = uvicorn.Server(
        uvicorn.Config(parts.app, host="127.0.0.1", port=0, log_level="warning")
    )
    stop = asyncio.Event()
    tasks = [asyncio.create_task(svc.run(stop)), asyncio.create_task(parts.engine.run(stop))]
    api_task = asyncio.create_task(server.serve())
    edge: Edge | None = None
    try:
        await until(lambda: server.started or api_task.done(), what="API listening")
        if api_task.done():
            api_task.result()  # raises what stopped it
            pytest.fail("the API server stopped before it started")
        port = server.servers[0].sockets[0].getsockname()[1]
        await until(lambda: collecting(svc), what="service collecting from every device")
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(
            base_url=base, timeout=10, headers={"Authorization": f"Bearer {token}"}
        ) as client:
            edge = Edge(client, svc, parts, base)
            yield edge
    finally:
        if edge is not None:
            for c in edge.people:
                await c.aclose()
        stop.set()
        server.should_exit = True
        await asyncio.gather(*tasks, api_task)
        parts.close()
        store.close()
        trail.close()


@pytest.fixture
async def api(plant, plant_config):
    """The service collecting from the simulated plant, its API on a free port; yields an
    HTTP client holding an inspector's token (reads everything, changes nothing), the
    service, and the API's parts (accounts, signatures, monitoring)."""
    async with running_edge(plant_config) as edge:
        yield edge.client, edge.svc, edge.parts
