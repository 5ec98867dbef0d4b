"""The Node-RED floor: Node-RED polling the same Modbus TCP registers as gmp-edge.

    PYTHONPATH=src .venv/bin/python bench/nodered_floor.py [--devices 4] [--window 20]

The floor is what a plain polling stack costs for the same registers from the same
simulators: Node-RED with node-red-contrib-modbus, counting registers in one function node
and nothing else (no store, no quality, no limits).

- install(folder) npm-installs node-red@4.1.15 and node-red-contrib-modbus@5.23.3 (5.45.2
  and 5.60.2 fetch from a host outside the package registries at install time and fail
  here) once into /tmp/gmp-edge-nodered-cache/<versions>/ and links ``folder/node_modules``
  to it. Needs node >= 18.5 and npm on PATH.
- run_floor(devices, window_s, warmup_s) writes flows.json (one modbus-client per host:port,
  one modbus-read per request, a counting function node, GET /count), starts Node-RED
  headless (no editor, no admin API) on a free loopback port with a temporary userDir,
  measures points/s, CPU and RSS of the node process, and stops it.
- The self-test (this file run as a script) starts the project's Modbus simulator with
  ``--devices`` particle counters (10 units per gateway), polls 100 registers of each
  (FC04 0..75, FC03 0..23) every ``--interval`` s, prints run_floor's result, and exits 1
  unless the points delivered are within 1 % of those requested with no failed request.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

NODE_RED_VERSION = "4.1.15"
MODBUS_VERSION = "5.23.3"
CACHE_ROOT = Path(os.environ.get("GMP_EDGE_NODERED_CACHE", "/tmp/gmp-edge-nodered-cache"))


class FloorError(RuntimeError):
    """Node-RED could not be installed, started or measured."""


def _tool(name: str) -> str:
    """The path of ``node`` or ``npm``, or a FloorError saying how to get it."""
    path = shutil.which(name)
    if path is None:
        raise FloorError(
            f"{name} not found on PATH: the Node-RED floor needs Node.js >= 18.5 and npm "
            "(e.g. `apt-get update && apt-get install -y nodejs npm`)"
        )
    return path


def _node_version(node: str) -> str:
    """``node --version`` without the leading v, e.g. ``20.20.2``."""
    out = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    return out.stdout.strip().lstrip("v")


def _npm_install(target: Path, npm: str) -> None:
    """npm-install the two pinned packages into ``target`` (its own package.json)."""
    target.mkdir(parents=True, exist_ok=True)
    manifest = {
        "name": "gmp-edge-nodered-floor",
        "version": "0.0.0",
        "private": True,
        "description": "Node-RED floor for the gmp-edge scale benchmark",
        "dependencies": {
            "node-red": NODE_RED_VERSION,
            "node-red-contrib-modbus": MODBUS_VERSION,
        },
    }
    (target / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
    cmd = [npm, "install", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"]
    proc = subprocess.run(cmd, cwd=target, capture_output=True, text=True)
    if proc.returncode != 0:
        raise FloorError(
            f"`{' '.join(cmd)}` in {target} failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-4000:]}{proc.stderr[-4000:]}"
        )
    for package in ("node-red", "node-red-contrib-modbus"):
        if not (target / "node_modules" / package / "package.json").is_file():
            raise FloorError(f"npm install in {target} left no node_modules/{package}")


def install(folder: Path) -> Path:
    """Install Node-RED and node-red-contrib-modbus for ``folder``; return Node-RED's red.js.

    The packages are installed once into a cache folder under /tmp keyed by the two versions
    and the node version (``$GMP_EDGE_NODERED_CACHE`` moves it, ``off`` installs straight
    into ``folder`` every time); ``folder/node_modules`` then links to it. An flock keeps two
    runs from installing the same cache at once, and a half-finished install is never reused.
    Raises FloorError, with the reason, when node or npm is missing or npm fails.
    """
    node, npm = _tool("node"), _tool("npm")
    version = _node_version(node)
    major, minor = (int(x) for x in version.split(".")[:2])
    if (major, minor) < (18, 5):
        raise FloorError(f"node {version} is too old: Node-RED {NODE_RED_VERSION} needs >= 18.5")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if str(CACHE_ROOT) == "off":
        _npm_install(folder, npm)
        modules = folder / "node_modules"
    else:
        key = f"node-red-{NODE_RED_VERSION}_modbus-{MODBUS_VERSION}_node-{version}"
        cache = CACHE_ROOT / key
        CACHE_ROOT.mkdir(parents=True, exist_ok=True)
        with open(CACHE_ROOT / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (cache / ".complete").is_file():
                staging = CACHE_ROOT / f"{key}.partial"
                shutil.rmtree(staging, ignore_errors=True)
                shutil.rmtree(cache, ignore_errors=True)
                _npm_install(staging, npm)
                (staging / ".complete").write_text(
                    time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime())
                )
                staging.rename(cache)
        modules = folder / "node_modules"
        if modules.is_symlink():
            modules.unlink()
        elif modules.exists():
            raise FloorError(f"{modules} exists and is not a link to the cache: remove it")
        modules.symlink_to(cache / "node_modules", target_is_directory=True)
    red = modules / "node-red" / "red.js"
    if not red.is_file():
        raise FloorError(f"no Node-RED entry point at {red}")
    return red


# ---------------------------------------------------------------------------------------------
# The flow


def _validate(devices: list[dict]) -> None:
    """Raise ValueError naming the first bad entry of ``devices``."""
    if not devices:
        raise ValueError("devices: at least one Modbus read request is needed")
    for i, d in enumerate(devices):
        missing = {"host", "port", "unit", "fc", "address", "count", "interval_s"} - set(d)
        if missing:
            raise ValueError(f"devices[{i}]: missing {', '.join(sorted(missing))}")
        if d["fc"] not in (3, 4):
            raise ValueError(f"devices[{i}].fc: must be 3 or 4, got {d['fc']!r}")
        if not 1 <= int(d["unit"]) <= 255:
            raise ValueError(f"devices[{i}].unit: must be 1..255, got {d['unit']!r}")
        if not 1 <= int(d["count"]) <= 125:
            raise ValueError(f"devices[{i}].count: must be 1..125, got {d['count']!r}")
        if not float(d["interval_s"]) >= 0.001:
            raise ValueError(f"devices[{i}].interval_s: must be >= 0.001, got {d['interval_s']!r}")


# Counts every response of every modbus-read node: registers (points), good responses, errors.
# With emptyMsgOnFail the read node sends {payload: '', error} on a failed request.
_COUNT_INIT = "global.set('floor', {points: 0, requests: 0, errors: 0, last_ms: 0});"
_COUNT_FUNC = """\
const c = global.get('floor');
if (msg.error) {
    c.errors += 1;
} else {
    c.requests += 1;
    c.points += Array.isArray(msg.payload) ? msg.payload.length : 0;
}
c.last_ms = Date.now();
return null;
"""
# GET /count: a copy of the counters, with Node-RED's clock.
_REPORT_FUNC = """\
const c = global.get('floor') || {points: 0, requests: 0, errors: 0, last_ms: 0};
msg.payload = Object.assign({now_ms: Date.now()}, c);
return msg;
"""


def build_flows(devices: list[dict]) -> list[dict]:
    """The flows.json content for ``devices``: one modbus-client per (host, port).

    Each entry becomes one ``modbus-read`` node (node-red-contrib-modbus 5.23.3) polling with
    its own timer (``rate`` in ms), sending on its first output to one ``count`` function node;
    an ``http in`` GET /count node answers with the counters. The client queues per unit id
    (``bufferCommands``) and sends to several unit ids at once (``parallelUnitIdsAllowed``),
    which is how the package serves a gateway with many units on one TCP connection; each read
    node names its own ``unitid``, which overrides the client's default ``unit_id``.
    """
    _validate(devices)
    tab = "floor-tab"
    nodes: list[dict] = [{"id": tab, "type": "tab", "label": "gmp-edge floor", "disabled": False}]
    clients: dict[tuple[str, int], str] = {}
    for d in devices:
        key = (str(d["host"]), int(d["port"]))
        if key in clients:
            continue
        cid = f"client-{len(clients)}"
        clients[key] = cid
        nodes.append(
            {
                "id": cid,
                "type": "modbus-client",
                "name": f"{key[0]}:{key[1]}",
                "clienttype": "tcp",
                "bufferCommands": True,
                "stateLogEnabled": False,
                "queueLogEnabled": False,
                "failureLogEnabled": False,
                "tcpHost": key[0],
                "tcpPort": str(key[1]),
                "tcpType": "DEFAULT",
                "serialPort": "/dev/ttyUSB",
                "serialType": "RTU-BUFFERD",
                "serialBaudrate": "9600",
                "serialDatabits": "8",
                "serialStopbits": "1",
                "serialParity": "none",
                "serialConnectionDelay": "100",
                "serialAsciiResponseStartDelimiter": "0x3A",
                "unit_id": str(int(d["unit"])),
                "commandDelay": "1",
                "clientTimeout": "1000",
                "reconnectOnTimeout": True,
                "reconnectTimeout": "2000",
                "parallelUnitIdsAllowed": True,
            }
        )
    for i, d in enumerate(devices):
        nodes.append(
            {
                "id": f"read-{i}",
                "type": "modbus-read",
                "z": tab,
                "name": f"u{d['unit']} fc{d['fc']} {d['address']}+{d['count']}",
                "topic": "",
                "showStatusActivities": False,
                "logIOActivities": False,
                "showErrors": False,
                "unitid": int(d["unit"]),
                "dataType": "HoldingRegister" if d["fc"] == 3 else "InputRegister",
                "adr": str(int(d["address"])),
                "quantity": str(int(d["count"])),
                "rate": str(max(1, round(float(d["interval_s"]) * 1000))),
                "rateUnit": "ms",
                "delayOnStart": False,
                "startDelayTime": "",
                "server": clients[(str(d["host"]), int(d["port"]))],
                "useIOFile": False,
                "ioFile": "",
                "useIOForPayload": False,
                "emptyMsgOnFail": True,
                "x": 200,
                "y": 40 + 20 * i,
                "wires": [["count"], []],
            }
        )
    nodes += [
        {
            "id": "count",
            "type": "function",
            "z": tab,
            "name": "count points",
            "func": _COUNT_FUNC,
            "outputs": 0,
            "timeout": 0,
            "noerr": 0,
            "initialize": _COUNT_INIT,
            "finalize": "",
            "libs": [],
            "x": 500,
            "y": 40,
            "wires": [],
        },
        {
            "id": "count-http",
            "type": "http in",
            "z": tab,
            "name": "GET /count",
            "url": "/count",
            "method": "get",
            "upload": False,
            "swaggerDoc": "",
            "x": 200,
            "y": 20,
            "wires": [["count-report"]],
        },
        {
            "id": "count-report",
            "type": "function",
            "z": tab,
            "name": "report",
            "func": _REPORT_FUNC,
            "outputs": 1,
            "timeout": 0,
            "noerr": 0,
            "initialize": "",
            "finalize": "",
            "libs": [],
            "x": 400,
            "y": 20,
            "wires": [["count-response"]],
        },
        {
            "id": "count-response",
            "type": "http response",
            "z": tab,
            "name": "",
            "statusCode": "",
            "headers": {},
            "x": 600,
            "y": 20,
            "wires": [],
        },
    ]
    return nodes


def write_settings(user_dir: Path, port: int) -> Path:
    """A settings.js for a headless Node-RED on 127.0.0.1:``port`` with ``user_dir``.

    The editor and admin API are off (``httpAdminRoot: false``), so only the flow's own
    http-in endpoints are served; no telemetry, diagnostics, palette or module installs;
    warnings and errors only on the console.
    """
    settings = {
        "uiPort": port,
        "uiHost": "127.0.0.1",
        "userDir": str(user_dir),
        "flowFile": "flows.json",
        "flowFilePretty": False,
        "credentialSecret": False,
        "httpAdminRoot": False,
        "disableEditor": True,
        "httpNodeRoot": "/",
        "logging": {"console": {"level": "warn", "metrics": False, "audit": False}},
        "diagnostics": {"enabled": False, "ui": False},
        "runtimeState": {"enabled": False, "ui": False},
        "telemetry": {"enabled": False, "updateNotification": False},
        "externalModules": {
            "autoInstall": False,
            "palette": {"allowInstall": False, "allowUpload": False},
            "modules": {"allowInstall": False},
        },
        "functionExternalModules": False,
        "contextStorage": {"default": {"module": "memory"}},
    }
    path = user_dir / "settings.js"
    path.write_text(f"module.exports = {json.dumps(settings, indent=2)};\n")
    return path


# ---------------------------------------------------------------------------------------------
# The process


def _free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_count(port: int, timeout: float = 5.0) -> dict:
    """GET /count from the flow: {points, requests, errors, last_ms, now_ms}."""
    url = f"http://127.0.0.1:{port}/count"
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return dict(json.loads(resp.read()))


_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far, from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime (fields 14, 15)


def _rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB (10^6 bytes), from /proc/<pid>/statm."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE / 1e6


def _log_tail(path: Path, n: int = 40) -> str:
    """The last ``n`` lines of Node-RED's log, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen[Any], grace_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace_s`` if Node-RED has not exited."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path, timeout_s: float) -> dict:
    """Poll GET /count until Node-RED answers and a first Modbus response is counted.

    Bounded by ``timeout_s``; raises FloorError (with the log's tail) when Node-RED exits,
    never serves /count, or no read completes (good or failed) in time.
    """
    deadline = time.monotonic() + timeout_s
    served = False
    while True:
        if proc.poll() is not None:
            raise FloorError(f"Node-RED exited with {proc.returncode}:\n{_log_tail(log)}")
        try:
            counts = _get_count(port, timeout=2.0)
            served = True
            if counts["requests"] + counts["errors"] > 0:
                return counts
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            what = "no Modbus response counted" if served else "GET /count never answered"
            raise FloorError(f"Node-RED not ready after {timeout_s:g} s: {what}\n{_log_tail(log)}")
        time.sleep(0.1)


def _window_start(last_ms: float, period_s: float) -> float:
    """The next wall time half a period after the last response (bursts are period-aligned).

    The read timers all start when their client connects, so responses come in bursts; a
    window that starts and ends mid-gap counts whole bursts only.
    """
    now = time.time()
    start = last_ms / 1000 + period_s / 2
    if start < now:
        start += math.ceil((now - start) / period_s) * period_s
    return start


def run_floor(
    devices: list[dict],
    window_s: float,
    warmup_s: float = 10,
    *,
    red: Path | None = None,
    ready_timeout_s: float = 60.0,
) -> dict:
    """Run Node-RED polling ``devices`` and measure it over ``window_s`` after ``warmup_s``.

    ``devices``: one dict per Modbus read request made every ``interval_s``:
    ``{"host", "port", "unit", "fc" (3 or 4), "address", "count", "interval_s"}``.
    ``red``: a red.js from :func:`install` (installed into the temporary folder if None).

    The window is rounded up to whole periods of the longest interval and starts mid-gap
    between response bursts, so it counts whole poll cycles. Returns ``points_per_s``
    (registers received), ``expected_per_s`` (registers requested), ``cpu_percent`` (of one
    core, the node process's utime + stime), ``rss_mb`` (at the end) and ``rss_peak_mb``
    (sampled every second), ``requests`` and ``errors`` (responses in the window),
    ``requests_per_s``, ``expected_requests_per_s`` and ``window_s`` (measured).
    """
    _validate(devices)
    expected = sum(int(d["count"]) / float(d["interval_s"]) for d in devices)
    expected_requests = sum(1 / float(d["interval_s"]) for d in devices)
    period = max(float(d["interval_s"]) for d in devices)
    with tempfile.TemporaryDirectory(prefix="gmp-edge-nodered-") as tmp:
        folder = Path(tmp)
        entry = red if red is not None else install(folder)
        user_dir = folder / "userdir"
        user_dir.mkdir()
        (user_dir / "flows.json").write_text(json.dumps(build_flows(devices)))
        port = _free_port()
        settings = write_settings(user_dir, port)
        log = folder / "node-red.log"
        with open(log, "wb") as log_file:
            proc = subprocess.Popen(
                [
                    _tool("node"),
                    str(entry),
                    "--settings",
                    str(settings),
                    "--userDir",
                    str(user_dir),
                ],
                cwd=folder,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_ready(proc, port, log, ready_timeout_s)
            time.sleep(warmup_s)
            cycles = max(1, math.ceil(window_s / period - 1e-9))
            start = _window_start(_get_count(port)["last_ms"], period)
            time.sleep(max(0.0, start - time.time()))
            t0, cpu0, c0 = time.monotonic(), _cpu_s(proc.pid), _get_count(port)
            end = t0 + cycles * period
            peak = _rss_mb(proc.pid)
            while (left := end - time.monotonic()) > 0:
                time.sleep(min(1.0, left))
                peak = max(peak, _rss_mb(proc.pid))
            t1, cpu1, c1 = time.monotonic(), _cpu_s(proc.pid), _get_count(port)
            rss = _rss_mb(proc.pid)
            if proc.poll() is not None:
                raise FloorError(f"Node-RED exited during the window:\n{_log_tail(log)}")
        finally:
            _stop(proc)
    # Counts over Node-RED's own clock between the two snapshots (a busy event loop answers
    # GET /count late); CPU over ours, read just before each GET.
    counted_s = (c1["now_ms"] - c0["now_ms"]) / 1000
    requests = c1["requests"] - c0["requests"]
    return {
        "points_per_s": (c1["points"] - c0["points"]) / counted_s,
        "expected_per_s": expected,
        "cpu_percent": 100 * (cpu1 - cpu0) / (t1 - t0),
        "rss_mb": rss,
        "rss_peak_mb": max(peak, rss),
        "requests": requests,
        "errors": c1["errors"] - c0["errors"],
        "requests_per_s": requests / counted_s,
        "expected_requests_per_s": expected_requests,
        "window_s": counted_s,
    }


# ---------------------------------------------------------------------------------------------
# Self-test against the project's own simulator


def simulator_spec(n_devices: int, units_per_endpoint: int) -> str:
    """TOML for ``n_devices`` particle counters, ``units_per_endpoint`` per gateway, free ports.

    Each counter serves 76 input registers (0..75) and 36 holding registers (0..35).
    """
    lines = ["seed = 1", "tick_s = 0.5"]
    for n in range(n_devices):
        unit = n % units_per_endpoint + 1
        if unit == 1:
            gw = n // units_per_endpoint + 1
            lines += ["", "[[modbus]]", f'id = "gw{gw:03d}"', 'host = "127.0.0.1"', "port = 0"]
        lines += [
            "[[modbus.units]]",
            f"unit_id = {unit}",
            f'id = "pc{n + 1:05d}"',
            'model = "particle_counter"',
        ]
    return "\n".join(lines) + "\n"


def start_simulator(spec: Path, timeout_s: float = 30.0) -> tuple[subprocess.Popen[str], dict]:
    """``python -m gmp_edge.simulators.modbus_server --spec FILE``; its process and ready line.

    Waits (bounded by ``timeout_s``) for the one JSON line it prints once every endpoint
    listens: ``{"ready": true, "modbus": {endpoint id: port}, ...}``.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "gmp_edge.simulators.modbus_server", "--spec", str(spec)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    line = proc.stdout.readline() if ready else ""
    if not line:
        _stop(proc)
        raise FloorError(f"simulator not ready within {timeout_s:g} s (exit {proc.poll()})")
    return proc, json.loads(line)


def simulator_devices(ports: dict[str, int], n_devices: int, units: int, interval_s: float) -> list:
    """The read requests for :func:`simulator_spec`'s plant: 100 registers per counter.

    One FC04 request for input registers 0..75 and one FC03 for holding 0..23 per device,
    as in the scale profile (100 tags per simulated device).
    """
    devices = []
    for n in range(n_devices):
        port = ports[f"gw{n // units + 1:03d}"]
        for fc, count in ((4, 76), (3, 24)):
            devices.append(
                {
                    "host": "127.0.0.1",
                    "port": port,
                    "unit": n % units + 1,
                    "fc": fc,
                    "address": 0,
                    "count": count,
                    "interval_s": interval_s,
                }
            )
    return devices


def main() -> int:
    """Self-test: simulated particle counters, Node-RED polling them; print run_floor's result.

    Exits 1 when the points/s delivered differ from those requested by more than 1 %, or
    when any request failed.
    """
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--devices", type=int, default=4, help="simulated devices (100 tags each)")
    ap.add_argument("--units-per-endpoint", type=int, default=10, help="units per gateway")
    ap.add_argument("--interval", type=float, default=1.0, help="poll interval, s")
    ap.add_argument("--window", type=float, default=20.0, help="measurement window, s")
    ap.add_argument("--warmup", type=float, default=10.0, help="warm-up, s")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="gmp-edge-floor-") as tmp:
        folder = Path(tmp)
        t = time.monotonic()
        red = install(folder / "nodered")
        install_s = time.monotonic() - t
        spec = folder / "sim.toml"
        spec.write_text(simulator_spec(args.devices, args.units_per_endpoint))
        sim, ready = start_simulator(spec)
        try:
            devices = simulator_devices(
                ready["modbus"], args.devices, args.units_per_endpoint, args.interval
            )
            sim_cpu0, t0 = _cpu_s(sim.pid), time.monotonic()
            result = run_floor(devices, args.window, args.warmup, red=red)
            sim_cpu = 100 * (_cpu_s(sim.pid) - sim_cpu0) / (time.monotonic() - t0)
        finally:
            _stop(sim)
    print(json.dumps(result, indent=2))
    ratio = result["points_per_s"] / result["expected_per_s"]
    print(
        f"Node-RED {NODE_RED_VERSION} + node-red-contrib-modbus {MODBUS_VERSION}: "
        f"{args.devices} devices, {len(devices)} requests every {args.interval:g} s, "
        f"{args.devices * 100:,} tags: {result['points_per_s']:,.1f} of "
        f"{result['expected_per_s']:,.1f} points/s ({ratio:.2%}), CPU {result['cpu_percent']:.1f} %"
        f", RSS {result['rss_mb']:.0f} MB, {result['errors']} errors in "
        f"{result['window_s']:.1f} s; install/cache {install_s:.1f} s; "
        f"simulator CPU {sim_cpu:.1f} % (whole run)"
    )
    return 0 if abs(ratio - 1) <= 0.01 and result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
