"""API load for the scale benchmark: N concurrent clients against a running gmp-edge API.

Run in a process of its own (its CPU is not the service's), for ``--seconds``:

    PYTHONPATH=src .venv/bin/python bench/api_load.py --base http://127.0.0.1:8080 \
        --token TOKEN --clients 20 --seconds 60 --tag scale/plant/room-gw000/pc0000/in000

Each client is a loop over what the people at the screens ask for, one request after the
other (a client waits for its answer before it asks again, as a browser tab does):

- ``latest``: GET /api/latest, every tag (the live page's table);
- ``rooms``: GET /api/status/rooms (the live page's room cards);
- ``health``: GET /api/health (the status bar);
- ``alarms``: GET /api/alarms (the alarm list);
- ``readings``: GET /api/readings for one tag, the last 10 minutes raw (a trend chart).

It prints one JSON document: requests, errors (non-2xx or transport errors, with the first
few messages), requests/s, and latency p50/p99/max in ms, overall and per kind. Nothing
is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

KINDS = ("latest", "rooms", "health", "alarms", "readings")
SLOW_MS = 250.0  # an answer at least this slow is listed with the time it came


def percentile(sorted_ms: list[float], q: float) -> float | None:
    """The ``q`` quantile of sorted values (nearest rank), None when there are none."""
    if not sorted_ms:
        return None
    return round(sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))], 1)


def summary(ms: list[float]) -> dict[str, Any]:
    """Count and p50/p99/max of latencies in ms."""
    s = sorted(ms)
    return {
        "n": len(s),
        "p50_ms": percentile(s, 0.5),
        "p99_ms": percentile(s, 0.99),
        "max_ms": round(s[-1], 1) if s else None,
    }


def request_of(kind: str, tag: str) -> tuple[str, dict[str, str]]:
    """(path, query) of one request of ``kind``."""
    if kind == "readings":
        end = datetime.now(UTC)
        start = end - timedelta(minutes=10)
        return "/api/readings", {"tag": tag, "start": start.isoformat(), "end": end.isoformat()}
    path = {
        "latest": "/api/latest",
        "rooms": "/api/status/rooms",
        "health": "/api/health",
        "alarms": "/api/alarms",
    }[kind]
    return path, {}


async def client(
    http: httpx.AsyncClient,
    offset: int,
    tag: str,
    until: float,
    times: dict[str, list[float]],
    errors: list[str],
    slow: list[tuple[float, str, float]],
) -> None:
    """One client: the kinds in turn (each client starting at another one) until ``until``."""
    i = offset
    while time.monotonic() < until:
        kind = KINDS[i % len(KINDS)]
        i += 1
        path, params = request_of(kind, tag)
        t = time.perf_counter()
        try:
            r = await http.get(path, params=params)
            ok = r.status_code < 300
            if ok:
                r.read()
            else:
                errors.append(f"{kind}: HTTP {r.status_code} {r.text[:120]}")
        except httpx.HTTPError as exc:
            ok = False
            errors.append(f"{kind}: {type(exc).__name__}: {exc}")
        if ok:
            ms = (time.perf_counter() - t) * 1000
            times[kind].append(ms)
            if ms >= SLOW_MS:
                slow.append((time.monotonic(), kind, ms))


async def run(base: str, token: str, clients: int, seconds: float, tag: str) -> dict[str, Any]:
    """Run the load; the figures as a dict."""
    times: dict[str, list[float]] = {k: [] for k in KINDS}
    errors: list[str] = []
    slow: list[tuple[float, str, float]] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=base,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60.0,
        limits=limits,
        trust_env=False,
    ) as http:
        t0, cpu0 = time.monotonic(), time.process_time()
        until = t0 + seconds
        await asyncio.gather(
            *(client(http, c, tag, until, times, errors, slow) for c in range(clients))
        )
        elapsed = time.monotonic() - t0
        cpu = time.process_time() - cpu0
    every = [x for k in KINDS for x in times[k]]
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": len(every),
        "errors": len(errors),
        "first_errors": errors[:5],
        "rps": round(len(every) / elapsed, 1) if elapsed > 0 else 0.0,
        # the load's own CPU: near 100 % its own event loop adds to the latencies it measures
        "client_cpu_pct": round(100 * cpu / elapsed, 1) if elapsed > 0 else 0.0,
        "all": summary(every),
        "kinds": {k: summary(times[k]) for k in KINDS},
        # when the slow answers came (s from the start): stalls of the whole service show
        # as many kinds at one moment, and their period names the work behind them
        "slow": [[round(at - t0, 2), kind, round(ms)] for at, kind, ms in slow[:2000]],
    }


def main() -> None:
    """Command line: run the load, print the JSON figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="API base URL")
    ap.add_argument("--token", required=True, help="viewer API token")
    ap.add_argument("--clients", type=int, default=20, help="concurrent clients (20)")
    ap.add_argument("--seconds", type=float, default=60.0, help="how long (60)")
    ap.add_argument("--tag", required=True, help="the tag of the readings requests")
    a = ap.parse_args()
    print(json.dumps(asyncio.run(run(a.base, a.token, a.clients, a.seconds, a.tag))))


if __name__ == "__main__":
    main()
