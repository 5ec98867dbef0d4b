"""The scale benchmark's API load through wrk (C, Debian package ``wrk``): 20 clients whose
own CPU does not add to the latencies they measure.

bench/api_load.py (Python, httpx) gives the figures per kind of request but costs ~70 %
of a core at 240 requests/s, on the same 2 cores as the service: near saturation its own
event loop adds to what it measures. wrk keeps ``--clients`` connections, each asking
again as soon as it has its answer (closed loop, as api_load does), and cycles through the
same five requests (bench/api_load.py KINDS: every tag's value, the room cards, health,
the alarm list, one tag's last 10 minutes), gzip accepted as a browser would. Its Lua
``done`` hook prints one JSON line: requests, errors, p50/p99/max over all of them.
"""

from __future__ import annotations

import json
import shutil
import urllib.parse
from pathlib import Path

SCRIPT = """
local token = "%(token)s"
local tag = "%(tag)s"
local paths = {"/api/latest", "/api/status/rooms", "/api/health", "/api/alarms", "readings"}
local i = 0
request = function()
  i = i + 1
  local p = paths[(i %% #paths) + 1]
  if p == "readings" then
    local now = os.time()
    p = "/api/readings?tag=" .. tag
      .. "&start=" .. os.date("!%%Y-%%m-%%dT%%H:%%M:%%SZ", now - 600)
      .. "&end=" .. os.date("!%%Y-%%m-%%dT%%H:%%M:%%SZ", now)
  end
  return wrk.format("GET", p, {
    ["Authorization"] = "Bearer " .. token,
    ["Accept-Encoding"] = "gzip",
  })
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"clients": %(clients)d, "requests": %%d, "duration_us": %%d, "errors": %%d, '
    .. '"p50_ms": %%.1f, "p99_ms": %%.1f, "max_ms": %%.1f}\\n',
    summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def available() -> bool:
    """Whether wrk is on the PATH."""
    return shutil.which("wrk") is not None


def command(
    base: str, token: str, tag: str, clients: int, seconds: float, folder: Path
) -> list[str]:
    """The wrk command line, its Lua script written into ``folder``."""
    script = folder / "api_load.lua"
    quoted = urllib.parse.quote(tag, safe="")
    script.write_text(SCRIPT % {"token": token, "tag": quoted, "clients": clients})
    return [
        "wrk",
        "-t2",
        f"-c{clients}",
        f"-d{max(1, int(seconds))}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        base,
    ]


def figures(stdout: str) -> dict[str, object]:
    """api_load's figure layout from wrk's output (overall only: wrk has no per-kind)."""
    line = next(x for x in reversed(stdout.splitlines()) if x.startswith("{"))
    d = json.loads(line)
    seconds = d["duration_us"] / 1e6
    return {
        "tool": "wrk",
        "clients": d["clients"],
        "seconds": round(seconds, 1),
        "requests": d["requests"],
        "errors": d["errors"],
        "first_errors": [],
        "rps": round(d["requests"] / seconds, 1) if seconds else 0.0,
        "all": {
            "n": d["requests"],
            "p50_ms": d["p50_ms"],
            "p99_ms": d["p99_ms"],
            "max_ms": d["max_ms"],
        },
        "kinds": {},
    }
