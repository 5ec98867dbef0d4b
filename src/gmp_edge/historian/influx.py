"""InfluxDB sinks for the forwarder, and a count reconciliation between store and InfluxDB.

- :class:`InfluxV1Sink`: the v1 HTTP API (``POST /write``), served by InfluxDB 1.x and by
  2.x/3.x through their v1 compatibility endpoints; httpx, gzip optional.
- :class:`InfluxV2Sink`: the v2 write API (``/api/v2/write``) through the official
  ``influxdb-client`` (its synchronous write API, run in a worker thread).
- :func:`reconcile`: per-tag point counts over a time range via InfluxQL ``/query``.

Both sinks map the destination's answers the same way (:func:`classify`): a refusal of the
data itself (400 parse error or partial write such as a field type conflict, 413 body too
large, 422 unprocessable) is a *reject*, which the forwarder bisects and quarantines;
everything else (429/503 with Retry-After, other 5xx, network errors, and 401/403/404
which mean the configuration is wrong, not the data) is a *retry*: the data stays in the
outbox until the destination takes it. See docs/decisions/0012.
"""

from __future__ import annotations

import asyncio
import email.utils
import gzip as gzip_module
import time
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import httpx

from gmp_edge.historian.forwarder import SendResult
from gmp_edge.historian.lineprotocol import MEASUREMENT, TagMeta

_SMALL_BODY = 64 * 1024  # compressing less than this inline costs less than a thread hop


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def classify(status: int, body: str, retry_after: str | None, where: str) -> SendResult:
    """A write response as a :class:`SendResult` (shared by the v1 and v2 sinks)."""
    text = body.strip()[:500]
    if 200 <= status < 300:
        return SendResult.ok()
    if status in (400, 413, 422):
        # the data itself is refused (parse error, partial write: field type conflict,
        # points beyond retention, too large): bisect and quarantine, never retry forever
        return SendResult.reject(f"HTTP {status}: {text}")
    after = parse_retry_after(retry_after)
    if status in (401, 403):
        return SendResult.retry(
            after,
            f"{where}: HTTP {status} {text} (credentials refused: a configuration"
            " problem, data kept in the outbox)",
        )
    if status == 404:
        return SendResult.retry(
            after,
            f"{where}: HTTP 404 {text} (database/bucket or endpoint not found: a"
            " configuration problem, data kept in the outbox)",
        )
    return SendResult.retry(after, f"{where}: HTTP {status} {text}")


def _body(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


class InfluxV1Sink:
    """Writes line protocol to ``{url}/write?db=..&rp=..&precision=ns`` (InfluxDB v1 API).

    Credentials go as HTTP basic auth (InfluxDB 1.x users; for 2.x/3.x v1 compatibility use
    a token as the password). ``gzip`` compresses request bodies (level 1: cheap, ~5x).
    """

    def __init__(
        self,
        url: str,
        database: str,
        retention_policy: str | None = None,
        username: str | None = None,
        password: str | None = None,
        gzip: bool = True,
        timeout_s: float = 10.0,
    ):
        self.url = url.rstrip("/")
        self.database = database
        self.gzip = gzip
        self.name = f"influxdb-v1 {self.url} db={database}"
        self._params = {"db": database, "precision": "ns"}
        if retention_policy:
            self._params["rp"] = retention_policy
        auth = httpx.BasicAuth(username, password or "") if username is not None else None
        self._client = httpx.AsyncClient(base_url=self.url, timeout=timeout_s, auth=auth)

    async def send(self, lines: list[str]) -> SendResult:
        """POST one batch; never raises for server or network problems."""
        body = _body(lines)
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.gzip:
            if len(body) > _SMALL_BODY:
                body = await asyncio.to_thread(gzip_module.compress, body, 1)
            else:
                body = gzip_module.compress(body, 1)
            headers["Content-Encoding"] = "gzip"
        try:
            resp = await self._client.post(
                "/write", params=self._params, content=body, headers=headers
            )
        except httpx.HTTPError as exc:  # refused, reset, timed out: nothing known stored
            return SendResult.retry(None, f"{self.url}: {type(exc).__name__}: {exc}")
        return classify(
            resp.status_code, _error_text(resp), resp.headers.get("Retry-After"), self.url
        )

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()


def _error_text(resp: httpx.Response) -> str:
    if resp.status_code < 300:
        return ""
    try:
        data = resp.json()
    except ValueError:
        return resp.text
    if isinstance(data, dict):
        return str(data.get("error") or data.get("message") or data)
    return resp.text


class InfluxV2Sink:
    """Writes line protocol to an InfluxDB 2.x bucket with the official ``influxdb-client``.

    The client's synchronous write API runs in a worker thread (its asyncio client needs
    aiohttp, which this box does not carry); its own retries are off: the forwarder decides.
    """

    def __init__(
        self,
        url: str,
        token: str,
        org: str,
        bucket: str,
        gzip: bool = True,
        timeout_s: float = 10.0,
    ):
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.url = url.rstrip("/")
        self.org = org
        self.bucket = bucket
        self.name = f"influxdb-v2 {self.url} org={org} bucket={bucket}"
        self._client = InfluxDBClient(
            url=self.url, token=token, org=org, timeout=int(timeout_s * 1000), enable_gzip=gzip
        )
        self._write = self._client.write_api(write_options=SYNCHRONOUS)

    def _send_blocking(self, lines: list[str]) -> SendResult:
        from influxdb_client.rest import ApiException

        try:
            self._write.write(bucket=self.bucket, org=self.org, record=_body(lines))
        except ApiException as exc:
            headers: Mapping[str, str] = exc.headers or {}
            body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else exc.body
            return classify(
                int(exc.status or 0),
                str(body or exc.reason or ""),
                headers.get("Retry-After"),
                self.url,
            )
        except Exception as exc:  # urllib3 connection errors and timeouts
            return SendResult.retry(None, f"{self.url}: {type(exc).__name__}: {exc}")
        return SendResult.ok()

    async def send(self, lines: list[str]) -> SendResult:
        """Write one batch; never raises for server or network problems."""
        return await asyncio.to_thread(self._send_blocking, lines)

    async def aclose(self) -> None:
        """Close the client."""
        await asyncio.to_thread(self._client.close)


class Reconciliation(NamedTuple):
    """Points of one tag in a time range: in the store, in InfluxDB, and the difference."""

    local: int
    remote: int
    missing: int  # in the store, not in InfluxDB
    extra: int  # in InfluxDB, not in the store


def _influxql_string(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ident(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


async def reconcile(
    url: str,
    database: str,
    tags: Iterable[str],
    start_us: int,
    end_us: int,
    local_counts: Mapping[str, int],
    *,
    retention_policy: str | None = None,
    username: str | None = None,
    password: str | None = None,
    timeout_s: float = 30.0,
) -> dict[str, Reconciliation]:
    """Compare per-tag point counts in ``[start_us, end_us)`` with the store's.

    ``tags`` are ISA-95 paths; ``local_counts`` the store's counts of *distinct timestamps*
    per path (InfluxDB keeps one point per series and timestamp). Runs InfluxQL
    ``SELECT count(quality_code) FROM reading WHERE tag=.. AND time.. GROUP BY site, area,
    room, equipment, tag`` over the v1 ``/query`` endpoint (InfluxDB 1.x, 2.x with a DBRP
    mapping, 3.x). VictoriaMetrics does not serve InfluxQL: use its export API there.
    """
    paths = sorted(set(tags))
    out: dict[str, int] = dict.fromkeys(paths, 0)
    signals = sorted({TagMeta.from_path(p).signal for p in paths})
    frm = _ident(MEASUREMENT)
    if retention_policy:
        frm = f"{_ident(database)}.{_ident(retention_policy)}.{frm}"
    auth = httpx.BasicAuth(username, password or "") if username is not None else None
    async with httpx.AsyncClient(base_url=url.rstrip("/"), timeout=timeout_s, auth=auth) as c:
        for i in range(0, len(signals), 200):  # keep the statement a sane length
            chunk = signals[i : i + 200]
            where = " OR ".join(f'"tag" = {_influxql_string(s)}' for s in chunk)
            q = (
                f'SELECT count("quality_code") FROM {frm} WHERE ({where})'
                f" AND time >= {start_us * 1000} AND time < {end_us * 1000}"
                ' GROUP BY "site", "area", "room", "equipment", "tag"'
            )
            resp = await c.post("/query", data={"db": database, "q": q})
            resp.raise_for_status()
            for res in resp.json().get("results", []):
                if "error" in res:
                    raise RuntimeError(f"{url}: InfluxQL error: {res['error']}")
                for series in res.get("series", []):
                    t: dict[str, Any] = series.get("tags", {})
                    path = "/".join(
                        str(t.get(k, "")) for k in ("site", "area", "room", "equipment", "tag")
                    )
                    if path in out:
                        out[path] += sum(int(v[1]) for v in series["values"])
    result: dict[str, Reconciliation] = {}
    for p in paths:
        local, remote = int(local_counts.get(p, 0)), out[p]
        result[p] = Reconciliation(local, remote, max(0, local - remote), max(0, remote - local))
    return result
