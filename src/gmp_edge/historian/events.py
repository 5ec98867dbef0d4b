"""Alarm transitions, deviation events and signed anchors to InfluxDB, after their own
outbox cursors.

Each stream is an append-only table with an increasing id (``alarm_transitions.id``,
``audit.seq`` for deviation entries, the line number of ``<store>.anchors`` for anchors).
The forwarder sends what lies after its cursor
(stream ``alarm_events`` / ``deviation_events`` of the destination) and moves the
cursor only when InfluxDB confirmed. A refused request is bisected as the readings
forwarder does: each point InfluxDB refuses for good is audited with its line and the
reason and skipped, the others land; never dropped silently, never blocking the stream.
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
from gmp_edge.historian.forwarder import SendResult, Sink, guarded_send, send_bisecting
from gmp_edge.historian.lineprotocol import encode_event
from gmp_edge.historian.store import Store
from gmp_edge.integrity.anchor_feed import AnchorFeed
from gmp_edge.retry import Backoff

log = logging.getLogger("gmp_edge.forward.events")


@dataclass(frozen=True)
class EventSource:
    """One event stream: how to read rows after an id and turn them into points. Rows come
    from ``query`` on the store, or from ``fetch(after, limit)`` for a stream kept outside
    it (the anchors file)."""

    stream: str
    query: str  # selects (id, ...) where id > ? order by id limit ?
    encode: Callable[[tuple[Any, ...]], str]
    fetch: Callable[[int, int], list[tuple[Any, ...]]] | None = None


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
    # an activation carries the value and limit at the trip, a clear the value it cleared at
    for key, keys in (("value", ("value", "value_at_trip")), ("limit", ("limit_at_trip",))):
        got = next((detail[k] for k in keys if isinstance(detail.get(k), int | float)), None)
        if got is not None:
            fields[key] = float(got)
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


def _anchor_line(row: tuple[Any, ...]) -> str:
    """An anchor as a point: its heads as fields and the signed line verbatim (``anchor``),
    so the signature can be checked from the historian alone. A line that is not an anchor
    is still sent (``kind=unreadable``): the copy outside the box must show it too."""
    n, text = row
    try:
        a = json.loads(text)
        at_us = int(a["at_us"])
        fields: dict[str, float | int | bool | str | None] = {
            "line": int(n),
            "audit_seq": int(a["audit_seq"]),
            "audit_sha256": str(a["audit_sha256"]),
            "seal_seq": None if a.get("seal_seq") is None else int(a["seal_seq"]),
            "seal_sha256": a.get("seal_sha256"),
            "key": str(a["key"]),
            "anchor": text,
        }
        return encode_event("anchor", {"kind": str(a["kind"])}, fields, at_us)
    except (ValueError, KeyError, TypeError):
        return encode_event("anchor", {"kind": "unreadable"}, {"line": int(n), "anchor": text}, 0)


def anchor_source(store_path: str | Path) -> EventSource:
    """The store's signed anchors (``<store>.anchors``) as stream ``anchors``."""
    feed = AnchorFeed(store_path)
    return EventSource("anchors", "", _anchor_line, feed.after)


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
    failing: bool = False


class EventForwarder:
    """Forwards the event streams to one sink, cursor by cursor.

    As the readings forwarder does: a refused request is bisected until the refused events
    are isolated (each audited with its line and the reason; the others land), a retry
    answer keeps the batch and waits with capped exponential backoff (or the server's
    Retry-After), and the cursor only moves past what was confirmed or audited.
    """

    def __init__(
        self,
        store: Store,
        trail: AuditTrail,
        sink: Sink,
        destination: str,
        flush_interval_s: float = 1.0,
        batch_size: int = 1000,
        sources: tuple[EventSource, ...] = SOURCES,
        backoff: Backoff | None = None,
    ):
        self.store, self.trail, self.sink = store, trail, sink
        self.destination, self.sources = destination, sources
        self.flush_interval_s, self.batch_size = flush_interval_s, batch_size
        self.backoff = backoff or Backoff(0.5, 60.0)
        self.stats = EventForwarderStatus()
        self._path = Path(store.path)
        self._conn: sqlite3.Connection | None = None
        self._retry: SendResult | None = None

    def _rows(self, source: EventSource, after: int) -> list[tuple[Any, ...]]:
        if source.fetch is not None:
            return source.fetch(after, self.batch_size)
        if self._conn is None:
            self._conn = sqlite3.connect(self._path, check_same_thread=False)
            self._conn.execute("pragma busy_timeout=5000")
        try:
            return list(self._conn.execute(source.query, (after, self.batch_size)))
        except sqlite3.OperationalError as exc:  # the table is created by its book later
            if "no such table" in str(exc):
                return []
            raise

    def _audit_refused(self, stream: str, refused: list[tuple[int, str, str]]) -> None:
        """One audit entry per refused event, with its line and the destination's reason."""
        with self.trail.atomic() as tx:
            for event_id, line, reason in refused:
                tx.append(
                    "system:forwarder",
                    "forward.refused",
                    "destination",
                    self.destination,
                    reason,
                    None,
                    {"stream": stream, "id": event_id, "line": line},
                )

    async def _drain_stream(self, source: EventSource) -> int:
        after = await asyncio.to_thread(self.store.outbox_cursor, self.destination, source.stream)
        rows = await asyncio.to_thread(self._rows, source, after)
        if not rows:
            return 0
        lines = [source.encode(r) for r in rows]
        d = await send_bisecting(lambda part: guarded_send(self.sink, part), lines)
        refused = [(int(rows[i][0]), lines[i], reason) for i, reason in d.refused]
        if refused:
            # before the ack: a crash in between audits them again, never loses them
            await asyncio.to_thread(self._audit_refused, source.stream, refused)
            self.stats.refused += len(refused)
            self.stats.last_error = refused[-1][2]
            log.warning("%s: %d %s refused, audited", self.destination, len(refused), source.stream)
        handled = set(d.delivered) | {i for i, _ in d.refused}
        prefix = next((i for i in range(len(rows)) if i not in handled), len(rows))
        if prefix:
            last = int(rows[prefix - 1][0])
            await asyncio.to_thread(self.store.outbox_ack, self.destination, last, source.stream)
        sent = len(d.delivered)
        self.stats.sent[source.stream] = self.stats.sent.get(source.stream, 0) + sent
        if d.retry is not None:
            self._retry = d.retry
            self.stats.retries += 1
            self.stats.last_error = d.retry.reason
        return sent

    async def drain_once(self) -> int:
        """Send what is pending on every stream once; returns events confirmed.

        A stream whose destination asked to try again keeps its batch; :attr:`retry` says so.
        """
        self._retry = None
        done = 0
        for source in self.sources:
            done += await self._drain_stream(source)
        self.stats.failing = self._retry is not None
        return done

    @property
    def retry(self) -> SendResult | None:
        """The last pass's retry answer (None: every stream delivered or had nothing)."""
        return self._retry

    async def run(self, stop: asyncio.Event) -> None:
        """Forward until ``stop``; then one last pass. Backs off while the sink asks to retry."""
        while not stop.is_set():
            try:
                await self.drain_once()
            except Exception as exc:  # keep forwarding alive; health shows the error
                log.exception("event forwarding failed")
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                self._retry = SendResult.retry(None, self.stats.last_error)
                self.stats.failing = True
            if self._retry is None:
                self.backoff.reset()
                pause = self.flush_interval_s
            else:
                pause = max(self.backoff.next_delay(), self._retry.after_s or 0.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
        with contextlib.suppress(Exception):
            await self.drain_once()

    def status(self) -> dict[str, object]:
        """Counters for the health API."""
        return {
            "sent": sum(self.stats.sent.values()),
            "refused": self.stats.refused,
            "retries": self.stats.retries,
            "failing": self.stats.failing,
            "last_error": self.stats.last_error,
        }
