"""Collector + store throughput against the simulated plant, compared in the same run with a
bare pymodbus read loop over the same registers; and RSS with 2,000 tags polled at 1 s.

    .venv/bin/python bench/collector_bench.py [--seconds 10] [--rss-seconds 30]

Throughput: each Modbus device of the example plant gets its own connection; the bare
loop issues exactly the requests of the collector's polling plan back to back and only
counts the points; the collector decodes, builds readings, tracks gaps and commits to
the SQLite store (WAL, synchronous=FULL). Points/s = committed rows per second, counted
in the store between two commits (so the window holds whole commit intervals).

The two alternate against the same simulator in every round (bare first in even rounds,
the collector first in odd ones); the ratio is taken per round, and min/median/max over
the rounds are printed, because a 2-core box running the simulator next to the
collector is noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
from pymodbus.client import AsyncModbusTcpClient

from gmp_edge.collector.modbus import ModbusDriver
from gmp_edge.collector.plan import Function
from gmp_edge.config import PlantConfig
from gmp_edge.edge.config import parse_config
from gmp_edge.edge.service import EdgeService
from gmp_edge.edge.wiring import build_driver, modbus_spec
from gmp_edge.historian.store import Store

ROOT = Path(__file__).parents[1]


def start_simulator(spec: dict[str, Any], tmp: Path) -> tuple[subprocess.Popen[str], dict]:
    """The Modbus simulator (`python -m gmp_edge.simulators.modbus_server`) in its own process.

    Returns the process and its ready line.
    """
    import tomli_w

    path = tmp / "sim.toml"
    path.write_bytes(tomli_w.dumps(spec).encode())
    proc = subprocess.Popen(
        [sys.executable, "-m", "gmp_edge.simulators.modbus_server", "--spec", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    ready = json.loads(proc.stdout.readline())
    return proc, ready


def example_config(ports: dict[str, int], store: Path, interval: float) -> PlantConfig:
    """The example plant's register devices (no press, no records), aimed at the simulator."""
    data = tomllib.loads((ROOT / "examples" / "plant.toml").read_text())
    data["devices"] = [
        d
        for d in data["devices"]
        if d["protocol"] == "modbus" and d["id"].startswith(("trh", "dp"))
    ]
    keep = {d["id"] for d in data["devices"]}
    data["tags"] = [t for t in data["tags"] if t["device"] in keep]
    # limits and production sources of the tags left out go too: collection only is measured
    paths = {t["path"] for t in data["tags"]}
    data["limits"] = [e for e in data.get("limits", []) if e["tag"] in paths]
    data["production"] = []
    for d in data["devices"]:
        d["port"] = ports["gw-granulation"] if d["port"] == 15020 else ports["gw-compression"]
        d["poll_interval_s"] = interval
    data["store"] = {"path": str(store)}
    data.pop("simulation", None)
    return parse_config(data, Path("bench.toml"))


async def bare_loop(cfg: PlantConfig, seconds: float) -> float:
    """Points/s of a bare pymodbus loop issuing the collector's requests back to back."""
    from gmp_edge.collector.plan import plan_requests
    from gmp_edge.edge.wiring import register_point

    async def one(dev_id: str) -> int:
        d = cfg.device(dev_id)
        assert d.protocol == "modbus"
        reqs = plan_requests([register_point(t, d) for t in cfg.tags if t.device == dev_id])
        client = AsyncModbusTcpClient(d.host, port=d.port, timeout=1, retries=0)
        await client.connect()
        points = 0
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            for r in reqs:
                call = (
                    client.read_holding_registers
                    if r.function is Function.HOLDING
                    else client.read_input_registers
                )
                rr = await call(r.address, count=r.count, device_id=d.unit_id)
                if not rr.isError():
                    points += len(r.points)
        client.close()
        return points

    t = time.perf_counter()
    counts = await asyncio.gather(*(one(d.id) for d in cfg.devices))
    return sum(counts) / (time.perf_counter() - t)


async def _after_next_commit(service: EdgeService, store: Store) -> tuple[int, float]:
    """Rows in the store and the time, just after the committer's next commit (or try)."""
    h = service.health
    tries, give_up = h.commits + h.failed_commits, time.perf_counter() + 10
    while h.commits + h.failed_commits == tries and time.perf_counter() < give_up:
        await asyncio.sleep(0.005)
    return store.count_readings(), time.perf_counter()


async def collector_rate(cfg: PlantConfig, seconds: float) -> tuple[float, int]:
    """Committed readings/s through drivers -> service -> store, polling back to back."""
    store = Store(cfg.store.path)
    service = EdgeService(cfg, "bench", store)
    # back-to-back polling: the benchmark asks for the ceiling, not the schedule
    drivers = []
    for d in cfg.devices:
        built = build_driver(cfg, d.id)
        assert isinstance(built, ModbusDriver) and d.protocol == "modbus"
        drivers.append(ModbusDriver(replace(modbus_spec(d), poll_interval_s=0), built.points))
    service.drivers = list(drivers)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await asyncio.sleep(1.0)  # connect and warm up
    n0, t0 = await _after_next_commit(service, store)
    await asyncio.sleep(seconds)
    n1, t1 = await _after_next_commit(service, store)
    stop.set()
    await task
    store.close()
    return (n1 - n0) / (t1 - t0), service.health.failed_commits


def rss_spec(units: int) -> dict[str, Any]:
    """A gateway with ``units`` particle counters, each 76 input + 24 holding registers."""
    return {
        "seed": 1,
        "tick_s": 0.5,
        "modbus": [
            {
                "id": "gw",
                "host": "127.0.0.1",
                "port": 0,
                "units": [
                    {
                        "unit_id": u,
                        "id": f"pc{u:02d}",
                        "model": "particle_counter",
                        "conc_0_5": 100000.0,
                        "conc_5_0": 500.0,
                        "flow_cfm": 1.0,
                        "sample_time_s": 60,
                        "record_capacity": 100,
                    }
                    for u in range(1, units + 1)
                ],
            }
        ],
    }


def rss_config(port: int, units: int, store: Path) -> PlantConfig:
    """2,000 uint16 tags: 100 per device (input 0..75, holding 0..23), polled at 1 s."""
    tags, equipment, devices = [], [], []
    for u in range(1, units + 1):
        dev = f"pc{u:02d}"
        devices.append(
            {
                "id": dev,
                "protocol": "modbus",
                "host": "127.0.0.1",
                "port": port,
                "unit_id": u,
                "poll_interval_s": 1.0,
            }
        )
        equipment.append({"id": dev, "kind": "particle_counter", "room": "r1"})
        for fn, n in (("input", 76), ("holding", 24)):
            for a in range(n):
                tags.append(
                    {
                        "path": f"s/a/r1/{dev}/{fn}{a:03d}",
                        "device": dev,
                        "modbus": {"function": fn, "address": a, "data_type": "uint16"},
                    }
                )
    data = {
        "site": {"id": "s"},
        "areas": [{"id": "a"}],
        "rooms": [{"id": "r1", "area": "a"}],
        "equipment": equipment,
        "devices": devices,
        "tags": tags,
        "store": {"path": str(store)},
    }
    return parse_config(data, Path("rss.toml"))


async def rss_run(cfg: PlantConfig, seconds: float) -> tuple[float, int, float]:
    """Peak RSS (MB) of this process while the service polls ``cfg`` for ``seconds``."""
    proc = psutil.Process(os.getpid())
    store = Store(cfg.store.path)
    service = EdgeService(cfg, "bench", store)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    peak = 0.0
    end = time.monotonic() + seconds
    cpu0 = proc.cpu_times()
    while time.monotonic() < end:
        await asyncio.sleep(1.0)
        peak = max(peak, proc.memory_info().rss / 1e6)
    cpu1 = proc.cpu_times()
    stop.set()
    await task
    n = store.count_readings()
    store.close()
    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / seconds
    return peak, n, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rss-seconds", type=float, default=30.0)
    ap.add_argument("--rss-units", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        spec = tomllib.loads((ROOT / "examples" / "sim-solid-dose.toml").read_text())
        spec = copy.deepcopy(spec)
        spec["scenario"] = []
        spec.pop("opcua", None)
        for ep in spec["modbus"]:
            ep["port"] = 0
        sim, ready = start_simulator(spec, tmp)
        try:
            bares: list[float] = []
            ours_all: list[float] = []
            failed = 0
            for i in range(args.rounds):  # alternate, so load from elsewhere hits both alike
                cfg = example_config(ready["modbus"], tmp / f"c{i}.db", 0.001)
                for run_bare in (True, False) if i % 2 == 0 else (False, True):
                    if run_bare:
                        bares.append(asyncio.run(bare_loop(cfg, args.seconds)))
                    else:
                        rate, n_failed = asyncio.run(collector_rate(cfg, args.seconds))
                        ours_all.append(rate)
                        failed += n_failed
            ratios = [o / b for o, b in zip(ours_all, bares, strict=True)]
            bare, ours = statistics.median(bares), statistics.median(ours_all)
            print(
                f"collector+store: {ours:,.0f} points/s committed; bare pymodbus loop, same "
                f"requests: {bare:,.0f} points/s (medians); ratio per round: median "
                f"{statistics.median(ratios):.0%}, min {min(ratios):.0%}, max {max(ratios):.0%} "
                f"(target >= 50%); {args.rounds} rounds of {args.seconds:g} s; "
                f"{len(cfg.devices)} devices, {len(cfg.tags)} tags, failed commits {failed}"
            )
            print("  rounds (collector/bare): " + ", ".join(f"{r:.0%}" for r in ratios))
        finally:
            sim.terminate()
            sim.wait(10)
        sim, ready = start_simulator(rss_spec(args.rss_units), tmp)
        try:
            cfg = rss_config(ready["modbus"]["gw"], args.rss_units, tmp / "rss.db")
            peak, n, cpu = asyncio.run(rss_run(cfg, args.rss_seconds))
            print(
                f"RSS: peak {peak:.0f} MB with {len(cfg.tags)} tags polled at 1 s for "
                f"{args.rss_seconds:g} s ({n:,} readings committed, {cpu:.0%} of one core) "
                f"(target < 200 MB)"
            )
        finally:
            sim.terminate()
            sim.wait(10)


if __name__ == "__main__":
    main()
