"""Scale benchmark: `gmp-edge run` (the real service, its own process) against the project's
own Modbus TCP simulators, at N tags, measured from outside.

    PYTHONPATH=src .venv/bin/python bench/scale_bench.py --tags 200,2000
    PYTHONPATH=src .venv/bin/python bench/scale_bench.py --tags 10000 --window 60
    PYTHONPATH=src .venv/bin/python bench/scale_bench.py --tags 2000 --nodered

For every N of ``--tags`` (default 200,2000,10000,20000) it builds, in a temporary folder:

- a simulator spec: ceil(N / 100) simulated particle counters, 10 units per Modbus TCP
  endpoint (port 0: the OS picks), served by ``python -m gmp_edge.simulators.modbus_server``
  in one or more processes of their own (``--sim-procs``);
- a plant TOML: 100 uint16 tags per device (input registers 0..75 and holding registers
  0..23, so one FC04 and one FC03 request a poll), polled every second (``--interval``),
  one room per endpoint, limits on 1 tag in 10 that never trip (alert 1,000,000 and action
  2,000,000 on a uint16), the store in the temporary folder, the API on a free loopback
  port, everything else at its default;
- a viewer API token, written into the new store before the service starts (the API needs
  one for /api/health).

Then it starts `gmp-edge run --config <tmp>/plant.toml`, waits (bounded) until the API
answers and every device is connected with readings committed, waits out the warm-up
(``--warmup``, 15 s) and measures over a window of real time (``--window``, 60 s):

- committed/s: readings the committer committed (``store.committed`` of /api/health)
  between the first and the last commit seen in the window, over the time between them;
  the store's own rowids over the window are printed beside it as a cross-check;
- expected/s: tags / poll interval;
- CPU: utime+stime deltas from /proc of the gmp-edge process and its children (the
  integrity-check child), in % of one core (the process alone is in the detail line);
- RSS: the gmp-edge process's VmRSS, maximum of one sample a second;
- missed polls: the devices' ``missed_polls`` summed, delta over the window;
- commit ms: the last commit's duration (``store.last_commit_ms``), last / max of the
  health samples (every ``--health-every`` s: the max is of the samples, not of every commit);
- monitoring lag: readings committed but not yet evaluated (``monitoring.lag_readings``),
  last / max of the samples.

Over the same window, for every N of at least 100 tags, the alarm probe
(bench/alarm_probe.py) writes the first device's location register every second, on which
an alert limit of 100 trips and clears, and the service's own committed -> alarm persisted
latency (p50/p99) is printed; for the N of ``--api-at`` (10000), ``--api-clients`` (20)
clients load the API meanwhile, through wrk when it is installed (bench/api_wrk.py) or
bench/api_load.py (``--api-tool python``: figures per kind of request, but ~70 % of a
core of its own on the same box); their requests/s, p50/p99/max are printed.

The detail lines add pending readings, backpressure waits, how old the newest committed
reading is ("store behind"), gap rows written, failed polls, the simulators' CPU, the
health verdicts seen and how long the service took to stop.

``--nodered``: if bench/nodered_floor.py provides ``run_floor(devices, window_s) -> dict``,
it is called after the gmp-edge measurement (the service stopped, the same simulators still
running) with ``devices``, one dict {host, port, unit, fc, address, count, interval_s} per
Modbus request gmp-edge makes (taken from the service's own polling plan of the generated
plant), and its points/s and CPU are printed beside gmp-edge's, with gmp-edge's CPU per
tag over Node-RED's.

``--influx``: a real influxd (Debian ``influxdb``, bench/influx_bench.py's config) on a
loopback port gets an ``[influxdb]`` section in the plant, so the service forwards every
reading while it is measured; readings confirmed per second and the backlog (committed
minus the store's own ``outbox_cursors`` row, sampled with health) are printed, with
influxd's CPU (not counted in gmp-edge's).

Figures are printed, nothing is asserted. Everything started is stopped on exit (SIGTERM,
then SIGKILL after ``--stop-timeout``), Ctrl-C and errors included, and the temporary folder
is removed (``--keep`` keeps it). The profile this continues is
shared/reference/scale-profile.md.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import json
import math
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import tomli_w

sys.path.insert(0, str(Path(__file__).resolve().parent))
import alarm_probe  # bench/ is not a package: its folder is put on the path above
import api_wrk
import influx_bench

ROOT = Path(__file__).resolve().parents[1]
FLOOR_MODULE = Path(__file__).resolve().parent / "nodered_floor.py"

SITE, AREA = "scale", "plant"
TAGS_PER_DEVICE = 100
INPUT_REGISTERS = 76  # particle counter input registers 0..75: one FC04 request
HOLDING_REGISTERS = 24  # holding registers 0..23: one FC03 request
UNITS_PER_ENDPOINT = 10
LIMIT_EVERY = 10  # limits on 1 tag in 10
ALERT_HIGH, ACTION_HIGH = 1_000_000.0, 2_000_000.0  # a uint16 never reaches them
CLK_TCK = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")


class BenchError(RuntimeError):
    """A run could not be set up or measured; the message says why."""


# --- the generated plant ----------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Which simulated devices carry the tags: device ids per endpoint, tags per device."""

    endpoints: dict[str, list[str]]  # endpoint id -> device ids (unit ids 1..)
    tags: dict[str, int]  # device id -> number of tags

    @property
    def devices(self) -> int:
        """Number of simulated devices."""
        return len(self.tags)


def layout(n_tags: int) -> Layout:
    """N tags on ceil(N/100) devices, 10 devices per endpoint (the last ones may hold fewer)."""
    if n_tags < 1:
        raise BenchError(f"--tags: {n_tags} is not a positive number of tags")
    n_devices = math.ceil(n_tags / TAGS_PER_DEVICE)
    tags: dict[str, int] = {}
    endpoints: dict[str, list[str]] = {}
    for i in range(n_devices):
        dev = f"pc{i:04d}"
        tags[dev] = min(TAGS_PER_DEVICE, n_tags - i * TAGS_PER_DEVICE)
        endpoints.setdefault(f"gw{i // UNITS_PER_ENDPOINT:03d}", []).append(dev)
    return Layout(endpoints, tags)


def sim_specs(lay: Layout, procs: int, tick_s: float) -> list[dict[str, Any]]:
    """Simulator specs, the endpoints split into ``procs`` contiguous groups (one a process)."""
    ids = list(lay.endpoints)
    procs = max(1, min(procs, len(ids)))
    per = math.ceil(len(ids) / procs)
    specs = []
    for p in range(procs):
        group = ids[p * per : (p + 1) * per]
        if not group:
            continue
        specs.append(
            {
                "seed": 1 + p,
                "tick_s": tick_s,
                "modbus": [
                    {
                        "id": ep,
                        "host": "127.0.0.1",
                        "port": 0,
                        "units": [
                            {
                                "unit_id": u,
                                "id": dev,
                                "model": "particle_counter",
                                "sample_time_s": 60,
                                "record_capacity": 100,
                            }
                            for u, dev in enumerate(lay.endpoints[ep], start=1)
                        ],
                    }
                    for ep in group
                ],
            }
        )
    return specs


def probe_tag(lay: Layout) -> tuple[str, str] | None:
    """(tag path, device) of the alarm probe (bench/alarm_probe.py): the first device's
    last tag reads the writable location register instead of holding register 23, with an
    alert limit; None when the first device has fewer than 100 tags (tiny runs)."""
    ep, devs = next(iter(lay.endpoints.items()))
    if lay.tags[devs[0]] < TAGS_PER_DEVICE:
        return None
    return f"{SITE}/{AREA}/room-{ep}/{devs[0]}/ho{alarm_probe.LOCATION_REGISTER:03d}", devs[0]


def plant_data(
    lay: Layout, ports: dict[str, int], store: Path, interval_s: float
) -> dict[str, Any]:
    """The plant TOML document: one room per endpoint, a particle counter per device."""
    rooms, equipment, devices, tags, limits = [], [], [], [], []
    n = 0
    for ep, devs in lay.endpoints.items():
        room = f"room-{ep}"
        rooms.append({"id": room, "area": AREA})
        for unit, dev in enumerate(devs, start=1):
            equipment.append({"id": dev, "kind": "particle_counter", "room": room})
            devices.append(
                {
                    "id": dev,
                    "protocol": "modbus",
                    "host": "127.0.0.1",
                    "port": ports[ep],
                    "unit_id": unit,
                    "poll_interval_s": interval_s,
                }
            )
            count = lay.tags[dev]
            n_input = min(count, INPUT_REGISTERS)
            registers = [("input", a) for a in range(n_input)]
            registers += [("holding", a) for a in range(min(count - n_input, HOLDING_REGISTERS))]
            probe = probe_tag(lay)
            if probe is not None and dev == probe[1]:
                registers[-1] = ("holding", alarm_probe.LOCATION_REGISTER)
            for fn, address in registers:
                path = f"{SITE}/{AREA}/{room}/{dev}/{fn[:2]}{address:03d}"
                if probe is not None and path == probe[0]:
                    limits.append({"tag": path, "alert_high": alarm_probe.LIMIT, "priority": "low"})
                tags.append(
                    {
                        "path": path,
                        "device": dev,
                        "modbus": {"function": fn, "address": address, "data_type": "uint16"},
                    }
                )
                if n % LIMIT_EVERY == 0:
                    limits.append(
                        {
                            "tag": path,
                            "alert_high": ALERT_HIGH,
                            "action_high": ACTION_HIGH,
                            "priority": "low",
                        }
                    )
                n += 1
    return {
        "site": {"id": SITE},
        "areas": [{"id": AREA}],
        "rooms": rooms,
        "equipment": equipment,
        "devices": devices,
        "tags": tags,
        "limits": limits,
        "store": {"path": str(store)},
        "api": {"host": "127.0.0.1", "port": 0},
    }


def modbus_requests(data: dict[str, Any], config_path: Path) -> list[dict[str, Any]]:
    """Every Modbus request gmp-edge makes for this plant, from the service's own drivers.

    One dict {host, port, unit, fc, address, count, interval_s} per request: what a polling
    floor must read to poll exactly the same registers. Parsing also validates the plant
    the same way `gmp-edge run` will.
    """
    from gmp_edge.collector.modbus import ModbusDriver
    from gmp_edge.config import ModbusDevice
    from gmp_edge.edge.config import ConfigError, parse_config
    from gmp_edge.edge.wiring import build_driver

    try:
        cfg = parse_config(data, config_path)
    except ConfigError as exc:
        raise BenchError(f"the generated plant is refused:\n{exc}") from None
    out = []
    for d in cfg.devices:
        if not isinstance(d, ModbusDevice):
            continue
        driver = build_driver(cfg, d.id)
        if not isinstance(driver, ModbusDriver):
            raise BenchError(f"{d.id}: expected a Modbus driver, got {type(driver).__name__}")
        for r in driver.requests:
            out.append(
                {
                    "host": d.host,
                    "port": d.port,
                    "unit": d.unit_id,
                    "fc": int(r.function),
                    "address": r.address,
                    "count": r.count,
                    "interval_s": d.poll_interval_s,
                }
            )
    return out


def viewer_token(store: Path) -> str:
    """A viewer API token, written into the (new) store before the service first starts.

    The same as `gmp-edge users create-admin` does on a new store: audited, no anchor yet,
    so the service's start-up check accepts it.
    """
    from gmp_edge.audit.trail import AuditTrail
    from gmp_edge.identity.roles import Role
    from gmp_edge.identity.users import Directory

    trail = AuditTrail(store)
    try:
        directory = Directory(store, trail)
        try:
            return directory.create_token(
                "bench:scale", "scale-bench", Role.VIEWER, "scale benchmark reads /api/health"
            )
        finally:
            directory.close()
    finally:
        trail.close()


# --- processes --------------------------------------------------------------------------------


@dataclass
class Child:
    """A process this bench started, with the files its stdout and stderr go to."""

    name: str
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path

    def tail(self, n: int = 20) -> str:
        """The last ``n`` lines of its stderr (for error messages)."""
        try:
            lines = self.err.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(f"    {line}" for line in lines[-n:])


def start(cmd: list[str], name: str, folder: Path) -> Child:
    """Start ``cmd`` in a session of its own (Ctrl-C reaches only this bench, which stops it)."""
    out, err = folder / f"{name}.out", folder / f"{name}.err"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=fo,
            stderr=fe,
            cwd=ROOT,
            start_new_session=True,
        )
    return Child(name, proc, out, err)


def stop(child: Child, timeout_s: float) -> tuple[float, int | None]:
    """SIGTERM, then SIGKILL (to its process group) after ``timeout_s``.

    Returns the seconds it took and its exit code (None when it had to be killed).
    """
    t0 = time.monotonic()
    if child.proc.poll() is not None:
        return 0.0, child.proc.returncode
    with contextlib.suppress(ProcessLookupError):
        child.proc.send_signal(signal.SIGTERM)
    try:
        code: int | None = child.proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.proc.pid, signal.SIGKILL)  # the group this bench created for it
        child.proc.wait(10)
        code = None
    return time.monotonic() - t0, code


def wait_for(
    what: str,
    check: Callable[[], T | None],
    timeout_s: float,
    watch: list[Child],
    every_s: float = 0.2,
) -> T:
    """Poll ``check`` until it returns a value, at most ``timeout_s``; fail early when a
    watched process exits."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value is not None:
            return value
        for c in watch:
            if c.proc.poll() is not None:
                raise BenchError(
                    f"{c.name} exited with {c.proc.returncode} while waiting for {what}:\n"
                    f"{c.tail()}"
                )
        if time.monotonic() > deadline:
            tails = "\n".join(f"  {c.name}:\n{c.tail(8)}" for c in watch)
            raise BenchError(f"no {what} within {timeout_s:g} s\n{tails}")
        time.sleep(every_s)


def ready_line(child: Child) -> dict[str, Any] | None:
    """The simulator's JSON ready line, once it has written it."""
    try:
        first = child.out.read_text().partition("\n")
    except OSError:
        return None
    if not first[1]:
        return None
    info = json.loads(first[0])
    return info if info.get("ready") else None


BANNER = re.compile(r"health: (https?://\S+)/api/health")


def banner_url(child: Child) -> str | None:
    """The API's base URL from the service's start banner (the real port of port 0)."""
    try:
        m = BANNER.search(child.out.read_text(errors="replace"))
    except OSError:
        return None
    return m.group(1) if m else None


# --- measuring --------------------------------------------------------------------------------

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, no proxy


def get_health(base: str, token: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """GET /api/health with the viewer token."""
    req = urllib.request.Request(f"{base}/api/health", headers={"Authorization": f"Bearer {token}"})
    with _OPENER.open(req, timeout=timeout_s) as r:
        data: dict[str, Any] = json.load(r)
    return data


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name (index 0 is field 3, the state)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def descendants(pid: int) -> list[int]:
    """Live descendants of ``pid`` (from every process's parent in /proc)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            f = _stat_fields(int(entry))
            if f is not None:
                parent[int(entry)] = int(f[1])
    found, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        found += kids
        frontier += kids
    return found


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(the process's own utime+stime, its children's) in seconds.

    Children = reaped ones (cutime+cstime) plus every live descendant's own and reaped
    time, so the sum only grows as children come and go.
    """
    f = _stat_fields(pid)
    if f is None:
        return 0.0, 0.0
    own = int(f[11]) + int(f[12])
    kids = int(f[13]) + int(f[14])
    for d in descendants(pid):
        g = _stat_fields(d)
        if g is not None:
            kids += int(g[11]) + int(g[12]) + int(g[13]) + int(g[14])
    return own / CLK_TCK, kids / CLK_TCK


def rss_mb(pid: int) -> float:
    """VmRSS of ``pid`` in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return 0.0


class StoreProbe:
    """Read-only looks into the service's store: newest rowid, its edge time, gap rows."""

    def __init__(self, path: Path):
        self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)

    def marks(self) -> tuple[int, int | None, int]:
        """(max readings rowid, ts_edge_us of that reading, gap rows)."""
        row = self.conn.execute(
            "select rowid, ts_edge_us from readings order by rowid desc limit 1"
        ).fetchone()
        gaps = self.conn.execute("select count(*) from gaps").fetchone()[0]
        return (0, None, gaps) if row is None else (row[0], row[1], gaps)

    def forwarded(self, destination: str = "influxdb") -> int:
        """The last reading id ``destination`` has confirmed (0: none yet)."""
        try:
            row = self.conn.execute(
                "select last_id from outbox_cursors where destination=? and stream='readings'",
                (destination,),
            ).fetchone()
        except sqlite3.OperationalError:  # no table yet
            return 0
        return 0 if row is None else int(row[0])

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def _commit_time(h: dict[str, Any]) -> float | None:
    """The last commit's time (epoch s) from a health answer."""
    text = h["store"].get("last_commit")
    return None if text is None else datetime.fromisoformat(text).timestamp()


def _devices_sum(h: dict[str, Any], key: str) -> int:
    """A device counter summed over every device of a health answer."""
    return sum(int(d[key]) for d in h["devices"])


@dataclass
class Result:
    """The figures of one N."""

    tags: int
    devices: int
    requests: int
    expected_s: float
    committed_s: float = 0.0
    store_rows_s: float = 0.0
    evaluated_s: float = 0.0
    limit_set: str | None = None
    cpu_pct: float = 0.0
    own_cpu_pct: float = 0.0
    sim_cpu_pct: float = 0.0
    rss_mb: float = 0.0
    children_rss_mb: float = 0.0
    missed_polls: int = 0
    failed_polls: int = 0
    gap_rows: int = 0
    commit_ms_last: float | None = None
    commit_ms_max: float | None = None
    lag_last: int | None = None
    lag_max: int | None = None
    pending_max: int = 0
    backpressure_waits: int = 0
    behind_max_s: float | None = None
    statuses: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    health_errors: int = 0
    ready_s: float = 0.0
    stop_s: float = 0.0
    exit_code: int | None = None
    floor: dict[str, Any] | None = None
    floor_error: str | None = None
    alarm_p50_ms: float | None = None
    alarm_p99_ms: float | None = None
    probe_writes: int = 0
    probe_error: str | None = None
    api: dict[str, Any] | None = None
    api_error: str | None = None
    forwarded_s: float | None = None  # --influx: readings influxd confirmed, per second
    forward_backlog_last: int | None = None
    forward_backlog_max: int | None = None
    influxd_cpu_pct: float | None = None
    error: str | None = None
    wall_s: float = 0.0


def measure(
    service: Child,
    sims: list[Child],
    base: str,
    token: str,
    store: Path,
    res: Result,
    window_s: float,
    health_every_s: float,
    toggler: alarm_probe.Toggler | None = None,
    load: Callable[[], Child] | None = None,
    influxd: subprocess.Popen[bytes] | None = None,
) -> None:
    """Measure ``res``'s figures over ``window_s`` seconds of real time, with the alarm
    probe writing and the API load (started by ``load``) running over the same window;
    with ``influxd``, forwarding to it from the store's own outbox cursor."""
    pid = service.proc.pid
    probe = StoreProbe(store)
    api: Child | None = None
    try:
        if toggler is not None:
            toggler.start()
        if load is not None:
            api = load()
        h0 = get_health(base, token)
        c0, s0 = cpu_seconds(pid), sum(sum(cpu_seconds(s.proc.pid)) for s in sims)
        i0 = sum(cpu_seconds(influxd.pid)) if influxd is not None else 0.0
        f0 = probe.forwarded()
        m0, t0 = probe.marks(), time.monotonic()
        end = t0 + window_s
        next_health = t0 + health_every_s
        commit_ms: list[float] = []
        lags: list[int] = []
        statuses = {h0["status"]}
        while (now := time.monotonic()) < end:
            if service.proc.poll() is not None:
                raise BenchError(
                    f"gmp-edge exited with {service.proc.returncode}:\n{service.tail()}"
                )
            res.rss_mb = max(res.rss_mb, rss_mb(pid))
            res.children_rss_mb = max(res.children_rss_mb, sum(rss_mb(d) for d in descendants(pid)))
            if now >= next_health:
                next_health += health_every_s
                try:
                    h = get_health(base, token)
                except OSError:
                    res.health_errors += 1
                else:
                    _sample(h, res, commit_ms, lags, statuses, probe)
                if influxd is not None:
                    backlog = probe.marks()[0] - probe.forwarded()
                    res.forward_backlog_max = max(res.forward_backlog_max or 0, backlog)
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
        h1 = get_health(base, token)
        c1, s1 = cpu_seconds(pid), sum(sum(cpu_seconds(s.proc.pid)) for s in sims)
        i1 = sum(cpu_seconds(influxd.pid)) if influxd is not None else 0.0
        f1 = probe.forwarded()
        m1, t1 = probe.marks(), time.monotonic()
        _sample(h1, res, commit_ms, lags, statuses, probe)
        if toggler is not None:
            res.probe_writes, res.probe_error = toggler.stop(), toggler.error
            res.alarm_p50_ms = h1["monitoring"].get("alarm_latency_ms_p50")
            res.alarm_p99_ms = h1["monitoring"].get("alarm_latency_ms_p99")
        if api is not None:
            res.api, res.api_error = api_figures(api, window_s)
    finally:
        probe.close()
        if api is not None and api.proc.poll() is None:
            stop(api, 5)
    elapsed = t1 - t0
    if influxd is not None:
        res.forwarded_s = (f1 - f0) / elapsed
        res.forward_backlog_last = m1[0] - f1
        res.forward_backlog_max = max(res.forward_backlog_max or 0, res.forward_backlog_last)
        res.influxd_cpu_pct = 100 * (i1 - i0) / elapsed
    res.cpu_pct = 100 * (sum(c1) - sum(c0)) / elapsed
    res.own_cpu_pct = 100 * (c1[0] - c0[0]) / elapsed
    res.sim_cpu_pct = 100 * (s1 - s0) / elapsed
    committed = h1["store"]["committed"] - h0["store"]["committed"]
    ct0, ct1 = _commit_time(h0), _commit_time(h1)
    if ct0 is not None and ct1 is not None and ct1 > ct0:
        res.committed_s = committed / (ct1 - ct0)
    res.store_rows_s = (m1[0] - m0[0]) / elapsed
    res.evaluated_s = (h1["monitoring"]["readings"] - h0["monitoring"]["readings"]) / elapsed
    res.limit_set = h1["monitoring"].get("limit_set")
    res.gap_rows = m1[2] - m0[2]
    res.missed_polls = _devices_sum(h1, "missed_polls") - _devices_sum(h0, "missed_polls")
    res.failed_polls = _devices_sum(h1, "failed_polls") - _devices_sum(h0, "failed_polls")
    res.backpressure_waits = h1["store"]["backpressure_waits"] - h0["store"]["backpressure_waits"]
    res.commit_ms_last = h1["store"].get("last_commit_ms")
    res.commit_ms_max = max(commit_ms, default=None)
    res.lag_last = h1["monitoring"].get("lag_readings")
    res.lag_max = max(lags, default=None)
    res.statuses = sorted(statuses)
    res.reasons = sorted({r["code"] for r in h1["reasons"]})


def api_figures(api: Child, window_s: float) -> tuple[dict[str, Any] | None, str | None]:
    """(the API load's JSON figures, None) once it has finished, or (None, why not)."""
    try:
        api.proc.wait(timeout=window_s + 60)
    except subprocess.TimeoutExpired:
        return None, "the API load did not finish"
    try:
        text = api.out.read_text()
        if text.lstrip().startswith("{"):  # bench/api_load.py
            return json.loads(text), None
        return api_wrk.figures(text), None
    except (OSError, ValueError, StopIteration):
        return None, f"the API load exited with {api.proc.returncode}:\n{api.tail(5)}"


def _sample(
    h: dict[str, Any],
    res: Result,
    commit_ms: list[float],
    lags: list[int],
    statuses: set[str],
    probe: StoreProbe,
) -> None:
    """Fold one health sample (and how far the store is behind now) into the figures."""
    statuses.add(h["status"])
    if h["store"].get("last_commit_ms") is not None:
        commit_ms.append(float(h["store"]["last_commit_ms"]))
    if h["monitoring"].get("lag_readings") is not None:
        lags.append(int(h["monitoring"]["lag_readings"]))
    res.pending_max = max(res.pending_max, int(h["store"]["pending"]))
    _, edge_us, _ = probe.marks()
    if edge_us is not None:
        behind = time.time() - edge_us / 1e6
        res.behind_max_s = max(res.behind_max_s or 0.0, behind)


# --- one N ------------------------------------------------------------------------------------


def gmp_edge_command(config: Path) -> list[str]:
    """`gmp-edge run --config <config>`: the venv's console script, else the module."""
    script = Path(sys.executable).parent / "gmp-edge"
    if script.is_file():
        return [str(script), "run", "--config", str(config)]
    return [sys.executable, "-m", "gmp_edge.edge.cli", "run", "--config", str(config)]


def service_ready(base: str, token: str, n_devices: int) -> dict[str, Any] | None:
    """The health answer once every device is connected and readings are committed."""
    try:
        h = get_health(base, token, timeout_s=10)
    except OSError:
        return None
    connected = sum(1 for d in h["devices"] if d["state"] == "connected")
    if h["status"] == "starting" or connected < n_devices or not h["store"]["committed"]:
        return None
    return h


def run_one(n_tags: int, args: argparse.Namespace, top: Path, floor: Any) -> Result:
    """Simulators + service for ``n_tags``: warm up, measure, stop; the floor if asked."""
    t_start = time.monotonic()
    lay = layout(n_tags)
    folder = top / f"tags-{n_tags}"
    folder.mkdir()
    procs = args.sim_procs or min(4, math.ceil(len(lay.endpoints) / 5))
    sims: list[Child] = []
    service: Child | None = None
    influxd: subprocess.Popen[bytes] | None = None
    res = Result(n_tags, lay.devices, 0, n_tags / args.interval)
    try:
        for i, spec in enumerate(sim_specs(lay, procs, args.sim_tick)):
            path = folder / f"sim{i}.toml"
            path.write_bytes(tomli_w.dumps(spec).encode())
            cmd = [sys.executable, "-m", "gmp_edge.simulators.modbus_server", "--spec", str(path)]
            sims.append(start([*cmd, "--log-level", "WARNING"], f"sim{i}", folder))
        ports: dict[str, int] = {}
        for s in sims:
            info = wait_for(f"{s.name} ready", functools.partial(ready_line, s), 60, [s])
            ports.update(info["modbus"])
        store = folder / "store.db"
        config = folder / "plant.toml"
        data = plant_data(lay, ports, store, args.interval)
        if args.api_workers:
            data["api"]["workers"] = args.api_workers
        if args.influx:  # a real influxd on loopback, forwarded to as a plant would
            (folder / "influx").mkdir()
            influxd, influx_url = influx_bench.start_influxd(folder / "influx")
            influx_bench.query(influx_url, "CREATE DATABASE gmp_edge")
            data["influxdb"] = {
                "url": influx_url,
                "version": 1,
                "database": "gmp_edge",
                "gzip": False,  # loopback
            }
        config.write_bytes(tomli_w.dumps(data).encode())
        devices = modbus_requests(data, config)
        res.requests = len(devices)
        token = viewer_token(store)
        _log(
            f"{n_tags:,} tags: {lay.devices} devices on {len(lay.endpoints)} endpoints in "
            f"{len(sims)} simulator process(es), {len(devices)} requests per poll; starting "
            "gmp-edge"
        )
        service = svc = start(gmp_edge_command(config), "gmp-edge", folder)
        t_ready = time.monotonic()
        base = wait_for("API banner", functools.partial(banner_url, svc), args.ready_timeout, [svc])
        left = args.ready_timeout - (time.monotonic() - t_ready)
        wait_for(
            "every device connected and readings committed",
            functools.partial(service_ready, base, token, lay.devices),
            max(left, 5.0),
            [svc, *sims],
            every_s=0.5,
        )
        res.ready_s = time.monotonic() - t_ready
        _log(f"  ready after {res.ready_s:.1f} s; warm-up {args.warmup:g} s")
        time.sleep(args.warmup)  # a benchmark's warm-up: real time on purpose
        _log(f"  measuring {args.window:g} s")
        probe = probe_tag(lay)
        toggler = None
        if probe is not None:
            toggler = alarm_probe.Toggler("127.0.0.1", ports[next(iter(lay.endpoints))], 1, 1.0)
        load = None
        if args.api_clients and n_tags in args.api_at:
            seconds, probe_path = max(1.0, args.window - 2), data["tags"][0]["path"]
            if args.api_tool == "wrk":
                load_cmd = api_wrk.command(
                    base, token, probe_path, args.api_clients, seconds, folder
                )
            else:
                load_cmd = [
                    sys.executable,
                    str(Path(__file__).resolve().parent / "api_load.py"),
                    *("--base", base, "--token", token, "--clients", str(args.api_clients)),
                    *("--seconds", f"{seconds:g}", "--tag", probe_path),
                ]
            load = functools.partial(start, load_cmd, "api-load", folder)
        measure(
            svc,
            sims,
            base,
            token,
            store,
            res,
            args.window,
            args.health_every,
            toggler,
            load,
            influxd,
        )
        res.stop_s, res.exit_code = stop(svc, args.stop_timeout)
        service = None
        _log("  " + row(res))
        _log(f"  {detail(res)}")
        for line in under_load(res):
            _log(f"    {line}")
        if floor is not None:
            _log(f"  Node-RED floor: {len(devices)} requests, {args.window:g} s")
            try:
                res.floor = dict(floor(devices, args.window))
            except Exception as exc:  # the floor is optional: say why, keep the figures
                res.floor_error = f"{type(exc).__name__}: {exc}"
            _log(f"  Node-RED: {res.floor if res.floor is not None else res.floor_error}")
    except (BenchError, OSError) as exc:  # OSError: the API did not answer
        res.error = f"{type(exc).__name__}: {exc}" if isinstance(exc, OSError) else str(exc)
        _log(f"  {n_tags:,} tags: {exc}")
    finally:
        if service is not None:
            res.stop_s, res.exit_code = stop(service, args.stop_timeout)
        for s in sims:
            stop(s, 10)
        if influxd is not None:
            influxd.terminate()
            try:
                influxd.wait(10)
            except subprocess.TimeoutExpired:
                influxd.kill()
                influxd.wait()
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
        res.wall_s = time.monotonic() - t_start
    return res


# --- output -----------------------------------------------------------------------------------

HEADER = (
    "| tags | committed/s | expected/s | CPU | RSS | missed polls | commit ms (last/max) "
    "| monitoring lag (last/max) |\n|---|---|---|---|---|---|---|---|"
)


def _n(x: float | None, fmt: str = ",.0f") -> str:
    """A number, or a dash when unknown."""
    return "-" if x is None else format(x, fmt)


def row(r: Result) -> str:
    """One table row of the issue's table."""
    if r.error is not None and not r.committed_s:
        return f"| {r.tags:,} | failed: {r.error.splitlines()[0]} | | | | | | |"
    return (
        f"| {r.tags:,} | {r.committed_s:,.0f} | {r.expected_s:,.0f} | {r.cpu_pct:.1f} % "
        f"| {r.rss_mb:.0f} MB | {r.missed_polls:,} | {_n(r.commit_ms_last, '.1f')} / "
        f"{_n(r.commit_ms_max, '.1f')} | {_n(r.lag_last)} / {_n(r.lag_max)} |"
    )


def detail(r: Result) -> str:
    """What the row leaves out, on one line."""
    return (
        f"{r.tags:,} tags: {r.devices} devices, {r.requests} requests/poll; store rows "
        f"{r.store_rows_s:,.0f}/s; evaluated {r.evaluated_s:,.0f}/s (limit set "
        f"{r.limit_set}); CPU own {r.own_cpu_pct:.1f} % + children "
        f"{r.cpu_pct - r.own_cpu_pct:.1f} % (children RSS max {r.children_rss_mb:.0f} MB); "
        f"simulators {r.sim_cpu_pct:.1f} %; pending max {r.pending_max:,}; backpressure "
        f"waits {r.backpressure_waits:,}; store behind max {_n(r.behind_max_s, '.1f')} s; "
        f"gap rows {r.gap_rows:,}; failed polls {r.failed_polls:,}; health "
        f"{'/'.join(r.statuses) or '-'}{' (' + ', '.join(r.reasons) + ')' if r.reasons else ''}"
        f"{f'; {r.health_errors} health calls failed' if r.health_errors else ''}; ready "
        f"{r.ready_s:.1f} s; stop {r.stop_s:.1f} s (exit {r.exit_code})"
        f"{f'; run {r.wall_s:.0f} s' if r.wall_s else ''}"
    )


def under_load(r: Result) -> list[str]:
    """The alarm probe's and the API load's figures of one N (when they ran)."""
    lines = []
    if r.forwarded_s is not None:
        lines.append(
            f"forwarding to influxd (same box): {r.forwarded_s:,.0f} readings/s confirmed; "
            f"backlog last {r.forward_backlog_last:,} / max {r.forward_backlog_max:,} readings; "
            f"influxd CPU {r.influxd_cpu_pct:.1f} %"
        )
    if r.probe_writes or r.probe_error:
        lines.append(
            f"alarm latency (committed -> alarm persisted, the service's own figure): p50 "
            f"{_n(r.alarm_p50_ms, '.1f')} ms, p99 {_n(r.alarm_p99_ms, '.1f')} ms; probe "
            f"{r.probe_writes} writes (~{r.probe_writes // 2} activations)"
            f"{f'; probe failed: {r.probe_error}' if r.probe_error else ''}"
        )
    if r.api is not None:
        a, k = r.api, r.api["kinds"]
        per = ", ".join(
            f"{name} p50 {_n(f['p50_ms'], '.0f')} / p99 {_n(f['p99_ms'], '.0f')} ms"
            for name, f in k.items()
        )
        lines.append(
            f"API under {a['clients']} clients: {a['rps']:.1f} req/s, p50 "
            f"{_n(a['all']['p50_ms'], '.0f')} ms, p99 {_n(a['all']['p99_ms'], '.0f')} ms, "
            f"max {_n(a['all']['max_ms'], '.0f')} ms, {a['errors']} errors, the load's own "
            f"CPU {_n(a.get('client_cpu_pct'), '.0f')} %"
            f"{' (wrk)' if a.get('tool') == 'wrk' else ''}; {per}"
        )
        lines += [f"API error: {e}" for e in a["first_errors"]]
    elif r.api_error:
        lines.append(f"API load failed: {r.api_error}")
    return lines


def _figure(d: dict[str, Any], *keys: str) -> float | None:
    """The first of ``keys`` the floor's result has, as a number."""
    for k in keys:
        if isinstance(d.get(k), int | float):
            return float(d[k])
    return None


def floor_lines(results: list[Result]) -> list[str]:
    """The Node-RED comparison table (CPU per tag: gmp-edge's over Node-RED's)."""
    lines = [
        "| tags | gmp-edge committed/s | gmp-edge CPU | Node-RED points/s | Node-RED CPU "
        "| CPU per tag, gmp-edge / Node-RED |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.floor is None:
            why = r.floor_error or r.error or "not run"
            lines.append(f"| {r.tags:,} | {r.committed_s:,.0f} | {r.cpu_pct:.1f} % | {why} | | |")
            continue
        pts = _figure(r.floor, "points_per_s", "points_s", "points")
        cpu = _figure(r.floor, "cpu_pct", "cpu_percent", "cpu")
        ratio = "-" if not cpu else f"{(r.cpu_pct / r.tags) / (cpu / r.tags):.1f}x"
        if r.api is not None:  # the service also served the API load: not the same work
            ratio = f"({ratio} with the API load; run --api-clients 0 to compare)"
        lines.append(
            f"| {r.tags:,} | {r.committed_s:,.0f} | {r.cpu_pct:.1f} % | {_n(pts)} "
            f"| {_n(cpu, '.1f')} % | {ratio} |"
        )
    for r in results:
        if r.floor is not None:
            lines.append(f"  Node-RED floor at {r.tags:,} tags returned: {json.dumps(r.floor)}")
    return lines


def _log(text: str) -> None:
    """Progress on stderr, at once."""
    print(text, file=sys.stderr, flush=True)


def load_floor() -> Callable[[list[dict[str, Any]], float], dict[str, Any]] | None:
    """``run_floor`` of bench/nodered_floor.py, or None (with the reason on stderr)."""
    if not FLOOR_MODULE.is_file():
        _log(f"--nodered: {FLOOR_MODULE} does not exist; the floor is skipped")
        return None
    spec = importlib.util.spec_from_file_location("nodered_floor", FLOOR_MODULE)
    if spec is None or spec.loader is None:
        _log(f"--nodered: cannot load {FLOOR_MODULE}; the floor is skipped")
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn = getattr(module, "run_floor", None)
    if not callable(fn):
        _log(f"--nodered: {FLOOR_MODULE} has no run_floor(devices, window_s); skipped")
        return None
    return fn


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM to this bench unwinds like Ctrl-C, so everything it started is stopped."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> int:
    """Parse the arguments, run every N, print the table; 1 if a run failed, 130 when
    interrupted."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tags", default="200,2000,10000,20000", help="comma-separated tag counts")
    ap.add_argument("--warmup", type=float, default=15.0, help="seconds after ready (15)")
    ap.add_argument("--window", type=float, default=60.0, help="measurement seconds (60)")
    ap.add_argument("--interval", type=float, default=1.0, help="poll interval s (1)")
    ap.add_argument("--health-every", type=float, default=5.0, help="health sample s (5)")
    ap.add_argument("--ready-timeout", type=float, default=180.0, help="s to be ready (180)")
    ap.add_argument("--stop-timeout", type=float, default=90.0, help="SIGTERM -> SIGKILL s")
    ap.add_argument("--sim-procs", type=int, default=0, help="simulator processes (0: auto)")
    ap.add_argument("--sim-tick", type=float, default=0.5, help="simulator tick s (0.5)")
    ap.add_argument("--tmp-dir", default=None, help="where the temporary folder goes")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--nodered", action="store_true", help="also run bench/nodered_floor.py")
    ap.add_argument(
        "--influx", action="store_true", help="forward to a real influxd on loopback (Debian)"
    )
    ap.add_argument(
        "--api-clients", type=int, default=20, help="API load clients in the window (20; 0 off)"
    )
    ap.add_argument("--api-at", default="10000", help="tag counts that get the API load (10000)")
    ap.add_argument(
        "--api-tool",
        choices=("wrk", "python"),
        default="wrk" if api_wrk.available() else "python",
        help="the API load: wrk (C, overall figures; the default when installed) or "
        "bench/api_load.py (Python, figures per kind of request, ~70 %% of a core itself)",
    )
    ap.add_argument(
        "--api-workers", type=int, default=0, help="[api] workers (0: the service's default)"
    )
    args = ap.parse_args()
    counts = [int(x.replace("_", "")) for x in args.tags.split(",") if x.strip()]
    args.api_at = {int(x.replace("_", "")) for x in args.api_at.split(",") if x.strip()}
    floor = load_floor() if args.nodered else None
    t0 = time.monotonic()
    top = Path(tempfile.mkdtemp(prefix="gmp-edge-scale-", dir=args.tmp_dir))
    results: list[Result] = []
    interrupted = False
    try:
        with sigterm_as_interrupt():
            for n in counts:
                results.append(run_one(n, args, top, floor))
    except KeyboardInterrupt:
        interrupted = True
        _log("interrupted: everything started was stopped")
    finally:
        if args.keep:
            _log(f"kept {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)
    print(HEADER)
    for r in results:
        print(row(r))
    for r in results:
        print("  " + detail(r))
        for line in under_load(r):
            print("    " + line)
    if args.nodered:
        print()
        print("\n".join(floor_lines(results)))
    print(
        f"scale_bench: {len(results)} of {len(counts)} runs ({args.tags} tags), "
        f"{args.interval:g} s polling, warm-up {args.warmup:g} s, window {args.window:g} s; "
        f"CPU in % of one core of the gmp-edge process and its children ({os.cpu_count()} "
        f"cores); took {time.monotonic() - t0:.0f} s{'; interrupted' if interrupted else ''}"
    )
    return 130 if interrupted else 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
