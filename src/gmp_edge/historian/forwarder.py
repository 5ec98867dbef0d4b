"""Store-and-forward: drain the readings outbox to one destination, transactionally.

A :class:`Forwarder` reads the readings committed after its destination's cursor (the
outbox, docs/decisions/0003), encodes them, hands them to a :class:`Sink` and moves the
cursor only once the destination confirmed them. Nothing is dropped silently:

- a destination that is down, overloaded or misconfigured gets the same batch again, with
  capped exponential backoff that honours the server's Retry-After;
- a batch the destination refuses is bisected until the refused points are isolated; only
  those go to the ``quarantine`` table (with the line and the reason), the others land,
  and the cursor moves past both;
- a crash or cancellation between sending and acknowledging resends the batch on restart;
  destinations deduplicate by series + timestamp, so a replay overwrites itself.

SQLite is only touched in worker threads (``asyncio.to_thread``): the event loop also runs
the Modbus and OPC UA drivers. See docs/decisions/0012.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from gmp_edge.clock import now_us
from gmp_edge.historian.lineprotocol import (
    TagMeta,
    encode_in_series,
    good_number_line,
    series_prefix,
)
from gmp_edge.historian.store import Store, StoredReading
from gmp_edge.retry import Backoff
from gmp_edge.storage.schema import Schema, open_store

log = logging.getLogger(__name__)

Encoder = Callable[[StoredReading], "str | None"]

_QUARANTINE_SCHEMA = """
create table if not exists quarantine(
    destination text not null,
    reading_id integer not null,     -- readings.rowid (the outbox sequence)
    tag text not null,
    ts_us integer not null,
    line text not null,              -- what was sent (empty when it could not be encoded)
    reason text not null,
    at_us integer not null,
    primary key(destination, reading_id)
);
"""
QUARANTINE_SCHEMA = Schema("forwarder_quarantine", (_QUARANTINE_SCHEMA,))


@dataclass(frozen=True, slots=True)
class SendResult:
    """A destination's answer to one batch of lines.

    ``ok``: every line is stored. ``retry``: nothing can be assumed stored, send the same
    lines again (after ``after_s`` if the server said so). ``reject``: the destination will
    never take some of these lines; ``bad`` lists their indices when the destination says
    which, None when it does not (the forwarder then bisects).
    """

    kind: Literal["ok", "retry", "reject"]
    reason: str = ""
    after_s: float | None = None
    bad: tuple[int, ...] | None = None

    @classmethod
    def ok(cls) -> SendResult:
        """Everything stored."""
        return _OK

    @classmethod
    def retry(cls, after_s: float | None, reason: str) -> SendResult:
        """Try again later (``after_s`` from Retry-After, or None for the forwarder's backoff)."""
        return cls("retry", reason, after_s)

    @classmethod
    def reject(cls, reason: str, bad: tuple[int, ...] | None = None) -> SendResult:
        """Refused for good: the lines at ``bad`` (None: unknown which, maybe all)."""
        return cls("reject", reason, None, bad)


_OK = SendResult("ok")


class Sink(Protocol):
    """A destination that takes batches of encoded lines."""

    name: str

    async def send(self, lines: list[str]) -> SendResult:
        """Deliver ``lines``; must not raise for destination or network problems."""
        ...


@dataclass(frozen=True, slots=True)
class Delivery:
    """What :func:`send_bisecting` did with a list of lines (indices into it)."""

    delivered: tuple[int, ...]  # confirmed by the destination
    refused: tuple[tuple[int, str], ...]  # refused for good, each with the reason
    retry: SendResult | None  # the destination asked to try again: the rest is unsent
    requests: int  # requests the destination confirmed
    rejects: int  # answers that refused something


async def send_bisecting(
    send: Callable[[list[str]], Awaitable[SendResult]], lines: Sequence[str]
) -> Delivery:
    """Send ``lines``; a refused request is split until the refused lines are isolated.

    Where the destination names the bad lines only those are refused; otherwise halves are
    sent again, so the good lines land and each poison line is found in log2(n) requests.
    A retry answer stops at once: what was not confirmed or refused is to be sent again.
    """
    delivered: list[int] = []
    refused: list[tuple[int, str]] = []
    segments: deque[list[int]] = deque([list(range(len(lines)))] if lines else [])
    requests = rejects = 0
    while segments:
        seg = segments.popleft()
        res = await send([lines[i] for i in seg])
        if res.kind == "ok":
            delivered += seg
            requests += 1
            continue
        if res.kind == "retry":
            return Delivery(tuple(delivered), tuple(refused), res, requests, rejects)
        rejects += 1
        named = sorted({seg[j] for j in res.bad or () if 0 <= j < len(seg)})
        if named:  # the destination said which lines: only those are refused
            refused += [(i, res.reason) for i in named]
            rest = [i for i in seg if i not in set(named)]
            if rest:
                segments.appendleft(rest)
        elif len(seg) == 1:
            refused.append((seg[0], res.reason))
        else:
            mid = len(seg) // 2
            segments.appendleft(seg[mid:])
            segments.appendleft(seg[:mid])
    return Delivery(tuple(delivered), tuple(refused), None, requests, rejects)


async def guarded_send(sink: Sink, lines: list[str]) -> SendResult:
    """``sink.send``, with a sink that raises (it must not) answered as a retry."""
    try:
        return await sink.send(lines)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # never lose the batch to a sink's bug
        log.exception("%s: sink raised", getattr(sink, "name", type(sink).__name__))
        return SendResult.retry(None, f"sink error: {type(exc).__name__}: {exc}")


@dataclass(frozen=True, slots=True)
class QuarantinedPoint:
    """A reading a destination refused for good, kept with the line sent and the reason."""

    destination: str
    reading_id: int
    tag: str
    ts_us: int
    line: str
    reason: str
    at_us: int


@dataclass(frozen=True, slots=True)
class Drain:
    """What one :meth:`Forwarder.drain_once` did."""

    acked: int  # readings the cursor moved past (sent, quarantined or skipped)
    sent: int  # of those, confirmed by the destination
    quarantined: int
    retry: SendResult | None  # set when the destination asked to try again
    caught_up: bool  # there was less than a full batch to send


@dataclass(slots=True)
class _Item:
    rowid: int
    tag: str
    ts_us: int
    line: str | None  # None: the encoder chose not to forward it
    error: str | None = None  # the encoder raised: quarantined without being sent


class ReadingEncoder:
    """:func:`~historian.lineprotocol.encode_reading` with the plant's tag metadata (an
    :data:`Encoder`); :meth:`series` gives a tag's series prefix, which lets the forwarder
    write the commonest rows' lines straight from the table's rows.

    A tag missing from ``meta`` (removed from the config since it was recorded) is still
    forwarded, with the metadata its ISA-95 path gives (no unit, kind or grade).
    """

    def __init__(self, meta: Mapping[str, TagMeta]) -> None:
        self._known = dict(meta)
        self._prefixes: dict[str, str] = {}  # tag path -> its series (a str hashes once)

    def series(self, tag: str) -> str:
        """``reading,<tags> `` of the tag's series."""
        prefix = self._prefixes.get(tag)
        if prefix is None:
            m = self._known.get(tag)
            if m is None:
                m = self._known[tag] = TagMeta.from_path(tag)
            prefix = self._prefixes[tag] = series_prefix(m)
        return prefix

    def __call__(self, r: StoredReading) -> str:
        """The reading's line."""
        return encode_in_series(r, self.series(r.tag))


def reading_encoder(meta: Mapping[str, TagMeta]) -> ReadingEncoder:
    """The forwarder's encoder of readings to line protocol (:class:`ReadingEncoder`)."""
    return ReadingEncoder(meta)


class Forwarder:
    """Drains the readings outbox to one sink; the cursor moves only on confirmation.

    ``destination`` names the outbox cursor and the quarantine rows (e.g. ``"influxdb"``);
    two forwarders must never share one. ``batch_size`` readings are sent per request;
    when less than a full batch is waiting the forwarder waits ``flush_interval_s`` (or
    until :meth:`wake`) before looking again. The quarantine table lives in the store's
    database file, written through this forwarder's own connection.
    """

    def __init__(
        self,
        store: Store,
        sink: Sink,
        encode: Encoder,
        destination: str,
        batch_size: int = 5000,
        flush_interval_s: float = 1.0,
        max_backoff_s: float = 60.0,
        min_backoff_s: float = 0.5,
    ):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.store = store
        self.sink = sink
        self.encode = encode
        self.destination = destination
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_backoff_s = max_backoff_s
        self.min_backoff_s = min_backoff_s
        self._db: sqlite3.Connection | None = None
        self._db_lock = threading.Lock()
        self._wake = asyncio.Event()
        self._cursor: int | None = None
        self._last_id = 0
        self._oldest_unsent_us: int | None = None
        self._failing = False
        # counters for status()
        self.sent = 0
        self.batches = 0
        self.retries = 0
        self.rejects = 0
        self.skipped = 0
        self.quarantined_count: int | None = None
        self.last_error: str | None = None
        self.last_error_us: int | None = None
        self.last_ok_us: int | None = None

    # -- quarantine (own connection, worker threads only) ----------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            db = open_store(self.store.path, QUARANTINE_SCHEMA)
            db.execute(
                "pragma synchronous=full"
            )  # per connection: a quarantine survives power loss
            self._db = db
        return self._db

    def _count_quarantined(self) -> int:
        with self._db_lock:
            row = (
                self._conn()
                .execute("select count(*) from quarantine where destination=?", (self.destination,))
                .fetchone()
            )
        return int(row[0])

    def _write_quarantine(self, rows: list[QuarantinedPoint]) -> int:
        with self._db_lock:
            db = self._conn()
            db.execute("begin immediate")
            try:
                n = 0
                for q in rows:
                    n += db.execute(
                        "insert or ignore into quarantine(destination, reading_id, tag, ts_us,"
                        " line, reason, at_us) values(?,?,?,?,?,?,?)",
                        (q.destination, q.reading_id, q.tag, q.ts_us, q.line, q.reason, q.at_us),
                    ).rowcount
            except BaseException:
                db.execute("rollback")
                raise
            db.execute("commit")
        return n

    def quarantined(self, limit: int = 10_000) -> list[QuarantinedPoint]:
        """This destination's quarantined readings, oldest first (blocking: SQLite)."""
        with self._db_lock:
            rows = self._conn().execute(
                "select destination, reading_id, tag, ts_us, line, reason, at_us from quarantine"
                " where destination=? order by reading_id limit ?",
                (self.destination, limit),
            )
            return [QuarantinedPoint(*r) for r in rows]

    def close(self) -> None:
        """Close the quarantine connection (the store and the sink belong to the caller)."""
        with self._db_lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # -- reading the outbox (worker threads) -----------------------------------------

    def _load(self, after: int) -> list[_Item]:
        store = self.store
        rows = store.rows_after(after, self.batch_size)
        self._last_id = max(self._last_id, store.last_reading_id())
        items = []
        encode = self.encode
        # the commonest row, a Good finite float without text, message or cause, goes
        # from the table's row to its line without a reading object (half the drain's CPU)
        series = encode.series if isinstance(encode, ReadingEncoder) else None
        path_of = store.tag_path
        for row in rows:
            rowid, tid, ts_us, _, _, value, text, quality, message, cause = row
            tag = path_of(tid)
            if (
                series is not None
                and type(value) is float
                and value - value == 0.0  # finite: NaN and inf give NaN
                and quality == 0
                and text is None
                and message is None
                and cause is None
            ):
                items.append(_Item(rowid, tag, ts_us, good_number_line(series(tag), value, ts_us)))
                continue
            try:
                items.append(_Item(rowid, tag, ts_us, encode(store.stored_reading(row))))
            except Exception as exc:  # a bug or an unencodable value: keep it, visibly
                why = f"encoding failed: {type(exc).__name__}: {exc}"
                items.append(_Item(rowid, tag, ts_us, None, why))
        return items

    async def _cursor_now(self) -> int:
        if self._cursor is None:
            self._cursor = await asyncio.to_thread(self.store.outbox_cursor, self.destination)
            self._last_id = max(self._last_id, self._cursor)
            if self.quarantined_count is None:
                self.quarantined_count = await asyncio.to_thread(self._count_quarantined)
        return self._cursor

    # -- delivering ------------------------------------------------------------------

    async def _send(self, lines: list[str]) -> SendResult:
        return await guarded_send(self.sink, lines)

    async def _deliver(self, items: list[_Item]) -> tuple[list[_Item], Drain]:
        """One pass over ``items``: send, bisect rejects, quarantine, ack the confirmed prefix.

        Returns the items still to send (after a retry answer) and what was done.
        """
        n = len(items)
        handled = [False] * n
        quarantine: list[QuarantinedPoint] = []
        at = now_us()

        def quarantine_item(i: int, reason: str) -> None:
            it = items[i]
            quarantine.append(
                QuarantinedPoint(
                    self.destination,
                    it.rowid,
                    it.tag,
                    it.ts_us,
                    it.line or "",
                    reason,
                    at,
                )
            )
            handled[i] = True

        todo: list[int] = []
        skipped = 0
        for i, it in enumerate(items):
            if it.error is not None:
                quarantine_item(i, it.error)
            elif it.line is None:
                handled[i] = True
                skipped += 1
            else:
                todo.append(i)
        d = await send_bisecting(self._send, [items[i].line or "" for i in todo])
        for j in d.delivered:
            handled[todo[j]] = True
        for j, reason in d.refused:
            quarantine_item(todo[j], reason)
        sent, retry = len(d.delivered), d.retry
        self.batches += d.requests
        self.rejects += d.rejects
        self.retries += retry is not None
        if quarantine:
            # before the ack: a crash in between re-quarantines (ignored), never loses
            added = await asyncio.to_thread(self._write_quarantine, quarantine)
            self.quarantined_count = (self.quarantined_count or 0) + added
            for q in quarantine:
                log.warning(
                    "%s: reading %d (%s @ %d) quarantined: %s",
                    self.destination,
                    q.reading_id,
                    q.tag,
                    q.ts_us,
                    q.reason,
                )
        prefix = handled.index(False) if False in handled else n
        if prefix:
            await asyncio.to_thread(
                self.store.outbox_ack, self.destination, items[prefix - 1].rowid
            )
            self._cursor = max(self._cursor or 0, items[prefix - 1].rowid)
        remaining = [it for i, it in enumerate(items) if not handled[i]]
        self._oldest_unsent_us = remaining[0].ts_us if remaining else None
        self.sent += sent
        self.skipped += skipped
        now = now_us()
        if retry is None:
            self.last_ok_us = now
            if self._failing:
                log.info("%s: delivering again", self.destination)
            self._failing = False
        else:
            self._note_error(retry.reason, now)
        drain = Drain(prefix, sent, len(quarantine), retry, n < self.batch_size)
        return remaining, drain

    def _note_error(self, reason: str, at: int) -> None:
        if not self._failing or reason != self.last_error:
            log.warning("%s: will retry: %s", self.destination, reason)
        self._failing = True
        self.last_error = reason
        self.last_error_us = at

    async def drain_once(self) -> Drain:
        """Send one batch after the cursor, once (no backoff, no retry); for tests and tools."""
        cursor = await self._cursor_now()
        items = await asyncio.to_thread(self._load, cursor)
        if not items:
            self._oldest_unsent_us = None
            return Drain(0, 0, 0, None, True)
        self._oldest_unsent_us = items[0].ts_us
        _, drain = await self._deliver(items)
        return drain

    def wake(self) -> None:
        """New readings were committed: look now instead of at the next flush interval.

        Call from the event loop's thread (e.g. after each store commit).
        """
        self._wake.set()

    async def _pause(self, stop: asyncio.Event, seconds: float, wakeable: bool) -> None:
        waits = [asyncio.ensure_future(stop.wait())]
        if wakeable:
            waits.append(asyncio.ensure_future(self._wake.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        if wakeable:
            self._wake.clear()

    def _backoff(self, backoff: Backoff, after_s: float | None) -> float:
        """The pause before the next try: the next backoff step, or longer if the server says."""
        delay = backoff.next_delay()
        if after_s is not None:  # the server knows best when it will take writes again
            delay = max(delay, after_s)
        return delay

    async def run(self, stop: asyncio.Event) -> None:
        """Forward until ``stop`` is set; survives destination and store errors.

        While one batch is in flight the next one is read and encoded in a worker thread.
        Cancelling the task is safe: whatever was sent but not acknowledged is sent again
        by the next forwarder (an idempotent overwrite at the destination).
        """
        prefetch: asyncio.Task[list[_Item]] | None = None
        backoff = Backoff(min(self.min_backoff_s, self.max_backoff_s), self.max_backoff_s)
        try:
            while not stop.is_set():
                try:
                    if prefetch is not None:
                        items = await prefetch
                        prefetch = None
                    else:
                        items = await asyncio.to_thread(self._load, await self._cursor_now())
                except Exception as exc:  # the store refused (locked, I/O error): try again
                    log.exception("%s: reading the outbox failed", self.destination)
                    self._note_error(f"store: {type(exc).__name__}: {exc}", now_us())
                    await self._pause(stop, self._backoff(backoff, None), wakeable=False)
                    continue
                if not items:
                    self._oldest_unsent_us = None
                    await self._pause(stop, self.flush_interval_s, wakeable=True)
                    continue
                self._oldest_unsent_us = items[0].ts_us
                full = len(items) == self.batch_size
                if full:
                    prefetch = asyncio.create_task(asyncio.to_thread(self._load, items[-1].rowid))
                while items and not stop.is_set():
                    try:
                        items, drain = await self._deliver(items)
                    except Exception as exc:  # quarantine or ack failed: nothing acked
                        log.exception("%s: delivery failed", self.destination)
                        self._note_error(f"store: {type(exc).__name__}: {exc}", now_us())
                        drain = Drain(0, 0, 0, SendResult.retry(None, str(exc)), False)
                    if drain.retry is None:
                        backoff.reset()
                        continue
                    await self._pause(stop, self._backoff(backoff, drain.retry.after_s), False)
                    with contextlib.suppress(Exception):
                        self._last_id = await asyncio.to_thread(self.store.last_reading_id)
                if items:  # stopped with a batch in hand: the next run sends it again
                    break
                if not full:
                    await self._pause(stop, self.flush_interval_s, wakeable=True)
        finally:
            if prefetch is not None:
                prefetch.cancel()
                with contextlib.suppress(BaseException):
                    await prefetch

    # -- health ----------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Counters for the health page (no I/O: figures as of the last batch).

        ``backlog`` is readings committed but not yet confirmed, ``lag_s`` how old the
        oldest of them is, ``quarantined`` how many readings this destination refused.
        """
        cursor = self._cursor or 0
        oldest = self._oldest_unsent_us
        return {
            "destination": self.destination,
            "sink": getattr(self.sink, "name", type(self.sink).__name__),
            "cursor": cursor,
            "sent": self.sent,
            "batches": self.batches,
            "retries": self.retries,
            "rejects": self.rejects,
            "skipped": self.skipped,
            "quarantined": self.quarantined_count or 0,
            "backlog": max(0, self._last_id - cursor),
            "lag_s": 0.0 if oldest is None else max(0.0, (now_us() - oldest) / 1e6),
            "failing": self._failing,
            "last_error": self.last_error,
            "last_error_us": self.last_error_us,
            "last_ok_us": self.last_ok_us,
        }
