"""Alarm transitions and deviation events to InfluxDB, after their own outbox cursors.

Each stream is an append-only table with an increasing id (``alarm_transitions.id``,
``audit.seq`` for deviation entries). The forwarder sends what lies after its cursor
(stream ``alarm_events`` / ``deviation_events`` of the destination) and moves the
cursor only when InfluxDB confirmed. A point InfluxDB refuses for good is audited with
its line and skipped: never dropped silently, never blocking the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.historian.forwarder import Sink
from gmp_edge.historian.lineprotocol import encode_event
from gmp_edge.historian.store import Store
from gmp_edge.periodic import Periodic

log = logging.getLogger("gmp_edge.forward.events")


@dataclass(frozen=True)
class EventSource:
    """One event table: how to read rows after an id and turn them into points."""

    stream: str
    query: str  # selects (id, ...) where id > ? order by id limit ?
    encode: Callable[[tuple[Any, ...]], str]


def _alarm_line(row: tuple[Any, ...]) -> str:
    seq, tag, raw = row
    t = json.loads(raw)
    parts = tag.split("/")
    detail = t.get("detail") or {}
    fields: dict[str, float | int | bool | str | None] = {
        "seq": int(seq),
        "alarm_id": t["alarm_id"],
        "event": t["event"],
        "from_state": t["from_state"],
        "state": t["to_state"],
        "actor": t["actor"],
        "reason": t.get("reason") or "",
    }
    for key in ("value", "limit"):
        if isinstance(detail.get(key), int | float):
            fields[key] = float(detail[key])
    tags = {
        "room": parts[2] if len(parts) > 2 else "",
        "tag": parts[-1],
        "kind": t["alarm_id"].rpartition("#")[2],
        "priority": t["priority"],
    }
    return encode_event("alarm_event", tags, fields, int(t["at_us"]))


def _deviation_line(row: tuple[Any, ...]) -> str:
    seq, ts_us, actor, action, record_id, new = row
    loaded = json.loads(new) if new else None
    body: dict[str, Any] = loaded if isinstance(loaded, dict) else {}
    ev = body.get("evidence")
    evidence: dict[str, Any] = ev if isinstance(ev, dict) else {}
    cls = body.get("proposed_classification") or body.get("final_classification") or ""
    tags = {"room": str(evidence.get("room", "")), "classification": str(cls)}
    fields: dict[str, float | int | bool | str | None] = {
        "seq": int(seq),
        "id": record_id,
        "action": action,
        "actor": actor,
        "status": str(body.get("status", "")),
    }
    return encode_event("deviation_event", tags, fields, int(ts_us))


SOURCES = (
    EventSource(
        "alarm_events",
        "select id, tag, json from alarm_transitions where id > ? order by id limit ?",
        _alarm_line,
    ),
    EventSource(
        "deviation_events",
        "select seq, ts_us, actor, action, record_id, new from audit"
        " where record_type = 'deviation' and seq > ? order by seq limit ?",
        _deviation_line,
    ),
)


@dataclass
class EventForwarderStatus:
    """Counters per stream."""

    sent: dict[str, int] = field(default_factory=dict)
    refused: int = 0
    retries: int = 0
    last_error: str | None = None


class EventForwarder:
    """Forwards the event streams to one sink, cursor by cursor."""

    def __init__(
        self,
        store: Store,
        trail: AuditTrail,
        sink: Sink,
        destination: str,
        flush_interval_s: float = 1.0,
        batch_size: int = 1000,
        sources: tuple[EventSource, ...] = SOURCES,
    ):
        self.store = store
        self.trail = trail
        self.sink = sink
        self.destination = destination
        self.flush_interval_s = flush_interval_s
        self.batch_size = batch_size
        self.sources = sources
        self.stats = EventForwarderStatus()
        self._path = Path(store.path)
        self._conn: sqlite3.Connection | None = None

    def _rows(self, source: EventSource, after: int) -> list[tuple[Any, ...]]:
        if self._conn is None:
            self._conn = sqlite3.connect(self._path, check_same_thread=False)
            self._conn.execute("pragma busy_timeout=5000")
        try:
            return list(self._conn.execute(source.query, (after, self.batch_size)))
        except sqlite3.OperationalError as exc:  # the table is created by its book later
            if "no such table" in str(exc):
                return []
            raise

    async def drain_once(self) -> int:
        """Send what is pending on every stream once; returns points confirmed."""
        done = 0
        for source in self.sources:
            after = await asyncio.to_thread(
                self.store.outbox_cursor, self.destination, source.stream
            )
            rows = await asyncio.to_thread(self._rows, source, after)
            if not rows:
                continue
            lines = [source.encode(r) for r in rows]
            result = await self.sink.send(lines)
            last = int(rows[-1][0])
            if result.kind == "retry":
                self.stats.retries += 1
                self.stats.last_error = result.reason
                continue
            if result.kind == "reject":
                self.stats.refused += len(rows)
                self.stats.last_error = result.reason
                await asyncio.to_thread(
                    self.trail.append,
                    "system:forwarder",
                    "forward.refused",
                    "destination",
                    self.destination,
                    result.reason,
                    None,
                    {
                        "stream": source.stream,
                        "first": int(rows[0][0]),
                        "last": last,
                        "lines": lines[:20],
                    },
                )
            await asyncio.to_thread(self.store.outbox_ack, self.destination, last, source.stream)
            self.stats.sent[source.stream] = self.stats.sent.get(source.stream, 0) + len(rows)
            done += len(rows)
        return done

    async def run(self, stop: asyncio.Event) -> None:
        """Forward until ``stop``; then one last pass."""

        async def drain() -> None:
            try:
                await self.drain_once()
            except Exception as exc:  # keep forwarding alive; health shows the error
                log.exception("event forwarding failed")
                self.stats.last_error = f"{type(exc).__name__}: {exc}"

        await Periodic(drain, self.flush_interval_s, name="event forwarding").run(stop)
        with contextlib.suppress(Exception):
            await self.drain_once()

    def status(self) -> dict[str, object]:
        """Counters for the health API."""
        return {
            "sent": sum(self.stats.sent.values()),
            "refused": self.stats.refused,
            "retries": self.stats.retries,
            "last_error": self.stats.last_error,
        }
