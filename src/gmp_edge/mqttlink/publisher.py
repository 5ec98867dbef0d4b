"""The MQTT publisher: store -> broker, store-and-forward (docs/decisions/0013-mqtt.md).

Three streams leave the store in commit order, each behind its own outbox cursor
(destination ``mqtt``, docs/decisions/0003):

* ``readings`` (QoS 0 by default): after the report-by-exception / rate filter. The cursor
  moves once paho has taken the message; the store stays the complete record.
* ``alarms`` (``alarm_transitions.id``) and ``deviations`` (``audit.seq`` of deviation
  entries), QoS 1: the cursor moves only over events whose PUBACK came back, in order.
  While the broker is away nothing new is handed to paho and nothing is acked, so the
  backlog waits on disk; messages already in flight are resent by paho on reconnect.

paho's network loop runs in its own thread (``loop_start``); its callbacks only hand
work to the asyncio loop (``call_soon_threadsafe``), so all state except the retained
status map (lock) is touched from one thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import math
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gmp_edge.clock import now_us
from gmp_edge.collector.reading import Quality
from gmp_edge.config import MqttConfig, ReadingsPolicy
from gmp_edge.historian.store import Store, StoredReading
from gmp_edge.integrity.anchor_feed import AnchorFeed
from gmp_edge.mqttlink import payloads as pl
from gmp_edge.mqttlink.payloads import BatchCommand, CommandError
from gmp_edge.mqttlink.topics import TopicError, Topics, room_of
from gmp_edge.timefmt import iso

log = logging.getLogger(__name__)

DESTINATION = "mqtt"
READINGS, ALARMS, DEVIATIONS, ANCHORS = "readings", "alarms", "deviations", "anchors"

#: Called (in the asyncio loop) with every valid MES batch command; may be a coroutine
#: function. Raising refuses the command: the exception's text is published as the reason.
BatchCallback = Callable[[BatchCommand], Awaitable[None] | None]

T = TypeVar("T")


# ----------------------------------------------------------------------------- filter


class ReadingFilter:
    """Report by exception and per-tag rate limit (pure: no I/O, no clock of its own).

    :meth:`offer` says whether a reading goes out now; the caller calls :meth:`sent` once it
    did. A reading held back only by the rate limit is kept (latest per tag) and returned by
    :meth:`due` once the tag's window has passed. ``filtered`` counts readings that will
    never go out (unchanged, or superseded while held).
    """

    def __init__(self, policy: ReadingsPolicy):
        self.policy = policy
        rate = policy.max_rate_per_tag_hz
        self._min_gap_us = int(1_000_000 / rate) if rate else 0
        silence = policy.max_silence_s
        self._silence_us = int(silence * 1_000_000) if silence else None
        self._last: dict[str, tuple[int, float | str | None, Quality]] = {}
        self._held: dict[str, tuple[int, StoredReading]] = {}
        self.filtered = 0

    def _changed(self, r: StoredReading, kind: str) -> bool:
        last = self._last.get(r.tag)
        if last is None or self.policy.mode == "all":
            return True
        ts0, v0, q0 = last
        if r.quality != q0:
            return True
        if self._silence_us is not None and r.ts_us - ts0 >= self._silence_us:
            return True
        v = r.value
        if isinstance(v, float | int) and isinstance(v0, float | int):
            if math.isnan(v) or math.isnan(v0):
                return not (math.isnan(v) and math.isnan(v0))
            return abs(v - v0) > self.policy.deadband.get(kind, 0.0)
        return v != v0

    def offer(self, seq: int, r: StoredReading, kind: str = "") -> bool:
        """True: publish ``r`` now. False: filtered, or held for the rate limit."""
        if self._held.pop(r.tag, None) is not None:
            self.filtered += 1  # the newer reading supersedes the held one
        if not self._changed(r, kind):
            self.filtered += 1
            return False
        last = self._last.get(r.tag)
        # data time, not wall time: a replayed backlog is filtered as it was live
        if self._min_gap_us and last is not None and 0 <= r.ts_us - last[0] < self._min_gap_us:
            self._held[r.tag] = (seq, r)
            return False
        return True

    def sent(self, r: StoredReading) -> None:
        """``r`` was published: the next reading of its tag is compared with it."""
        self._last[r.tag] = (r.ts_us, r.value, r.quality)

    def due(self, now_us: int) -> list[tuple[int, StoredReading]]:
        """Held readings whose tag's rate window has passed by ``now_us`` (removed)."""
        out = []
        for tag, (seq, r) in list(self._held.items()):
            last = self._last.get(tag)
            if last is None or max(now_us, r.ts_us) - last[0] >= self._min_gap_us:
                out.append((seq, r))
                del self._held[tag]
        return sorted(out, key=lambda x: x[0])

    @property
    def held(self) -> int:
        """Readings waiting for their tag's rate window."""
        return len(self._held)


# ----------------------------------------------------------------------------- status


@dataclass(frozen=True, slots=True)
class MqttStatus:
    """Counters for health and the status page (since this publisher started).

    ``filtered``: readings not published by the RBE/rate filter (kept in the store).
    ``unpublishable``: readings or events skipped because their tag or row cannot be
    published (bad topic level, corrupt row); ``last_error`` names the last one.
    ``events_pending``: alarm and deviation events not yet confirmed by the broker (in
    flight plus waiting on disk). ``backlog``: readings committed but not yet handed over.
    """

    connected: bool
    connects: int
    published_readings: int
    published_events: int
    filtered: int
    unpublishable: int
    events_inflight: int
    events_pending: int
    backlog: int
    commands_accepted: int
    commands_rejected: int
    last_error: str | None

    @property
    def published(self) -> int:
        """Readings and events published."""
        return self.published_readings + self.published_events

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {**asdict(self), "published": self.published}


@dataclass
class _EventStream:
    """One QoS 1 event stream: its cursor on disk and what is in flight, in order."""

    name: str
    cursor: int = 0  # acked on disk
    ack_to: int = 0  # confirmed by the broker, to be written
    sent_after: int = 0  # highest seq handed to paho
    order: deque[int] = field(default_factory=deque)  # seqs in flight, publish order
    acked: set[int] = field(default_factory=set)  # confirmed but not yet contiguous
    inflight: int = 0
    failed: bool = False
    retry_at: float = 0.0
    backlog: int = 0  # rows on disk after sent_after (refreshed now and then)

    def advance(self) -> None:
        """Move ``ack_to`` over the confirmed prefix of what is in flight."""
        while self.order and self.order[0] in self.acked:
            seq = self.order.popleft()
            self.acked.discard(seq)
            self.ack_to = seq


# ----------------------------------------------------------------------------- store side

Event = tuple[int, str | None, bytes | None]  # seq, topic, body (None: row unusable, skip)


class _Source:
    """The store file, read (and cursors written) from one worker thread."""

    def __init__(self, path: Path, topics: Topics):
        self.store = Store(path)
        self.topics = topics
        self.anchor_feed = AnchorFeed(path)
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("pragma busy_timeout=5000")

    def close(self) -> None:
        self.store.close()
        self.conn.close()

    def _rows(self, sql: str, args: tuple[object, ...]) -> list[tuple[Any, ...]]:
        try:
            return self.conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # nothing has created the alarm books yet
                return []
            raise

    def tags(self) -> dict[str, tuple[str, str]]:
        return {p: (u, k) for p, u, k in self.conn.execute("select path, unit, kind from tags")}

    def alarms(self, after: int, limit: int) -> list[Event]:
        out: list[Event] = []
        rows = self._rows(
            "select id, tag, json from alarm_transitions where id>? order by id limit ?",
            (after, limit),
        )
        for seq, tag, raw in rows:
            try:
                room = room_of(tag)
                body = pl.alarm_event_body(seq, json.loads(raw), room)
                out.append((seq, self.topics.alarm_events(room), pl.encode(body)))
            except (ValueError, KeyError, TypeError) as exc:
                log.error("mqtt: alarm transition %s cannot be published: %s", seq, exc)
                out.append((seq, None, None))
        return out

    def deviations(self, after: int, limit: int) -> list[Event]:
        out: list[Event] = []
        rows = self._rows(
            "select seq, action, record_id, ts_us, actor, reason, new from audit"
            " where record_type='deviation' and seq>? order by seq limit ?",
            (after, limit),
        )
        for seq, action, rid, ts, actor, reason, new in rows:
            try:
                changes = json.loads(new) if new else {}
                if not isinstance(changes, dict):
                    changes = {"value": changes}
                body = pl.deviation_event_body(seq, action, rid, ts, actor, reason, changes)
                out.append((seq, self.topics.deviation_events, pl.encode(body)))
            except (ValueError, TypeError) as exc:
                log.error("mqtt: deviation audit entry %s cannot be published: %s", seq, exc)
                out.append((seq, None, None))
        return out

    def anchors(self, after: int, limit: int) -> list[Event]:
        # verbatim: a subscriber checks the Ed25519 signature against the box fingerprint
        return [
            (n, self.topics.anchors, text.encode())
            for n, text in self.anchor_feed.after(after, limit)
        ]

    def event_backlog(self, stream: str, after: int) -> int:
        if stream == ANCHORS:
            return max(0, self.anchor_feed.last_line() - after)
        if stream == ALARMS:
            sql = "select count(*) from alarm_transitions where id>?"
        else:
            sql = "select count(*) from audit where record_type='deviation' and seq>?"
        rows = self._rows(sql, (after,))
        return int(rows[0][0]) if rows else 0


# ----------------------------------------------------------------------------- publisher


class MqttPublisher:
    """Publishes the store's readings and events to one MQTT broker; receives MES commands.

    ``store_path``: the edge box's database (readings, ``alarm_transitions``, ``audit``).
    ``tag_units``: tag path -> unit for the payloads (tags missing here use the unit the
    store registered). ``site``: this box's site, the first level of every tag path and the
    ``{site}`` of the topic prefix. ``on_batch_command``: receives valid MES batch commands;
    None: the box does not subscribe to commands. ``environ``: where ``password_env`` is
    looked up (default ``os.environ``); a missing password fails here, at construction.

    Use: ``await publisher.run(stop)`` until ``stop`` is set; call :meth:`committed` after a
    commit to publish at once instead of at the next poll.
    """

    def __init__(
        self,
        cfg: MqttConfig,
        store_path: str | Path,
        tag_units: Mapping[str, str],
        site: str,
        on_batch_command: BatchCallback | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ):
        self.cfg = cfg
        self.site = site
        self.topics = Topics.for_site(cfg.topic_prefix, site)
        self.client_id = cfg.effective_client_id(site)
        self._password = cfg.password(environ)
        self._store_path = Path(store_path)
        self._tag_units = dict(tag_units)
        self._tags: dict[str, tuple[str, str]] = {}
        self._on_batch = on_batch_command
        self._filter = ReadingFilter(cfg.readings)
        self._streams = {name: _EventStream(name) for name in (ALARMS, DEVIATIONS, ANCHORS)}
        self._mids: dict[int, tuple[_EventStream, int]] = {}
        self._acks: deque[tuple[int, str | None]] = deque()  # from paho's thread
        self._acks_posted = False
        self._r_cursor = 0
        self._r_backlog = 0
        self._lock = threading.Lock()  # retained map and client, shared with paho's thread
        self._retained: dict[str, bytes] = {}
        self._client: mqtt.Client | None = None
        self._connected = False
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._commands: asyncio.Queue[bytes] | None = None
        self._since_us: int | None = None
        self._connects = 0
        self._published_readings = 0
        self._published_events = 0
        self._unpublishable = 0
        self._accepted = 0
        self._rejected = 0
        self._last_error: str | None = None

    # -- public ---------------------------------------------------------------------

    def status(self) -> MqttStatus:
        """Counters now (cheap; any thread)."""
        inflight = sum(s.inflight for s in self._streams.values())
        return MqttStatus(
            connected=self._connected,
            connects=self._connects,
            published_readings=self._published_readings,
            published_events=self._published_events,
            filtered=self._filter.filtered,
            unpublishable=self._unpublishable,
            events_inflight=inflight,
            events_pending=inflight + sum(s.backlog for s in self._streams.values()),
            backlog=self._r_backlog,
            commands_accepted=self._accepted,
            commands_rejected=self._rejected,
            last_error=self._last_error,
        )

    def committed(self) -> None:
        """New rows are in the store: publish now rather than at the next poll (any thread)."""
        self._post(self._set_wake)

    def publish_room_status(self, room: str, payload: Mapping[str, Any]) -> None:
        """Retained status of ``room`` (``{prefix}/status/rooms/{room}``; any thread).

        ``payload`` is the caller's JSON object; ``schema``, ``room`` and ``ts`` are added.
        The latest status per room is kept and republished after every reconnect.
        """
        body = pl.status_body("room", room, payload, now_us())
        self._retain(self.topics.room_status(room), pl.encode(body))

    def publish_device_status(self, device: str, payload: Mapping[str, Any]) -> None:
        """Retained status of ``device`` (``{prefix}/status/devices/{device}``; any thread)."""
        body = pl.status_body("device", device, payload, now_us())
        self._retain(self.topics.device_status(device), pl.encode(body))

    async def run(self, stop: asyncio.Event) -> None:
        """Connect (retrying with backoff), publish until ``stop`` is set, then go offline.

        On stop: waits up to ``drain_timeout_s`` for events in flight, writes the cursors,
        publishes the retained ``online: false`` / ``stopped`` status and disconnects.
        """
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._wake = asyncio.Event()
        self._commands = asyncio.Queue()
        pool = ThreadPoolExecutor(1, thread_name_prefix="mqtt-store")

        async def db(fn: Callable[..., T], *args: Any) -> T:
            return await loop.run_in_executor(pool, fn, *args)

        src = await db(_Source, self._store_path, self.topics)
        self._r_cursor = await db(src.store.outbox_cursor, DESTINATION, READINGS)
        for s in self._streams.values():
            s.cursor = s.ack_to = s.sent_after = await db(
                src.store.outbox_cursor, DESTINATION, s.name
            )
        client = self._make_client()
        with self._lock:
            self._client = client
        self._connect(client)
        client.loop_start()
        helpers = [
            asyncio.create_task(self._wake_on(stop)),
            asyncio.create_task(self._command_worker()),
        ]
        next_status = next_backlog = 0.0
        try:
            while not stop.is_set():
                try:
                    await self._pump(db, src, client)
                    if time.monotonic() >= next_backlog:
                        next_backlog = time.monotonic() + 1.0
                        await self._refresh_backlog(db, src)
                except (sqlite3.Error, OSError) as exc:
                    # a busy or failing disk must not end publishing; try again shortly
                    self._error(f"store: {exc}")
                    await asyncio.sleep(1.0)
                if self._connected and time.monotonic() >= next_status:
                    next_status = time.monotonic() + self.cfg.status_interval_s
                    self._publish_edge_status(client)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.cfg.poll_interval_s)
                self._wake.clear()
        finally:
            for t in helpers:
                t.cancel()
            await self._shutdown(db, src, client)
            pool.shutdown(wait=True)

    # -- paho side (paho's thread: hand over, do not touch loop state) ----------------

    def _post(self, fn: Callable[..., object], *args: object) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(fn, *args)

    def _make_client(self) -> mqtt.Client:
        cfg = self.cfg
        v5 = cfg.protocol == "5"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else False,  # 3.1.1: persistent session
        )
        if cfg.username is not None:
            client.username_pw_set(cfg.username, self._password)
        if cfg.tls.enabled:
            client.tls_set(
                ca_certs=None if cfg.tls.ca_file is None else str(cfg.tls.ca_file),
                certfile=None if cfg.tls.cert_file is None else str(cfg.tls.cert_file),
                keyfile=None if cfg.tls.key_file is None else str(cfg.tls.key_file),
            )
        will = pl.edge_status_body(False, self.site, self.client_id, reason="connection lost")
        client.will_set(self.topics.edge_status, pl.encode(will), qos=1, retain=True)
        client.reconnect_delay_set(cfg.reconnect_min_s, cfg.reconnect_max_s)
        # room for the birth and status messages next to the events window
        client.max_inflight_messages_set(cfg.max_inflight_events + 20)
        client.on_connect = self._cb_connect
        client.on_connect_fail = self._cb_connect_fail
        client.on_disconnect = self._cb_disconnect
        client.on_publish = self._cb_publish
        client.on_message = self._cb_message
        return client

    def _connect(self, client: mqtt.Client) -> None:
        cfg = self.cfg
        if cfg.protocol == "5":
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = cfg.session_expiry_s
            client.connect_async(
                cfg.host, cfg.port, cfg.keepalive_s, clean_start=False, properties=props
            )
        else:
            client.connect_async(cfg.host, cfg.port, cfg.keepalive_s)

    def _cb_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._post(self._error, f"broker refused the connection: {reason}")
            return
        self._since_us = now_us()
        birth = pl.edge_status_body(True, self.site, self.client_id, self._since_us)
        # birth first, then the latest retained statuses, then the command subscription
        client.publish(self.topics.edge_status, pl.encode(birth), qos=1, retain=True)
        # under the lock, as in _retain: a status changed meanwhile is published after this
        # replay, never before it (the broker would keep the stale one)
        with self._lock:
            self._connected = True
            for topic, body in self._retained.items():
                client.publish(topic, body, qos=1, retain=True)
        if self._on_batch is not None:
            client.subscribe(self.topics.batch_commands, qos=1)
        self._post(self._on_connected, bool(flags.session_present))

    def _cb_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        self._post(self._error, f"cannot connect to {self.cfg.host}:{self.cfg.port}")

    def _cb_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._lock:
            self._connected = False
        if not self._stopping:
            self._post(self._error, f"disconnected from the broker: {reason}")

    def _cb_publish(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        # batched: one hand-over per burst, not one per message (QoS 0 readings fire too)
        self._acks.append((mid, str(reason) if reason.is_failure else None))
        if not self._acks_posted:
            self._acks_posted = True
            self._post(self._drain_acks)

    def _cb_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self.topics.batch_commands:
            self._post(self._queue_command, bytes(msg.payload))

    # -- loop side -------------------------------------------------------------------

    def _set_wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._set_wake()

    def _error(self, text: str) -> None:
        if text != self._last_error:
            log.warning("mqtt: %s", text)
        self._last_error = text

    def _on_connected(self, session_present: bool) -> None:
        self._connects += 1
        log.info(
            "mqtt: connected to %s:%s as %s (session present: %s)",
            self.cfg.host,
            self.cfg.port,
            self.client_id,
            session_present,
        )
        self._set_wake()

    def _drain_acks(self) -> None:
        self._acks_posted = False  # first: an ack appended from now on posts again
        while self._acks:
            self._on_puback(*self._acks.popleft())

    def _on_puback(self, mid: int, failure: str | None) -> None:
        item = self._mids.pop(mid, None)
        if item is None:
            return  # a reading, a status message or the birth
        st, seq = item
        st.inflight -= 1
        if failure is None:
            st.acked.add(seq)
            self._published_events += 1
        else:
            st.failed = True
            self._error(f"broker refused {st.name} event {seq}: {failure}")
        st.advance()
        if st.failed and st.inflight == 0:
            # resend from the first unconfirmed event, after a pause (refusals rarely heal fast)
            st.order.clear()
            st.acked.clear()
            st.sent_after = st.ack_to
            st.failed = False
            st.retry_at = time.monotonic() + self.cfg.event_retry_s
        self._set_wake()

    def _retain(self, topic: str, body: bytes) -> None:
        # published under the lock: the order the broker sees is the order of the changes,
        # also against the replay after a reconnect (paho's publish only queues the packet)
        with self._lock:
            self._retained[topic] = body
            if self._connected and self._client is not None:
                self._client.publish(topic, body, qos=1, retain=True)

    def _publish_edge_status(self, client: mqtt.Client) -> None:
        st = self.status()
        extra = {
            "since": None if self._since_us is None else iso(self._since_us),
            "published": st.published,
            "filtered": st.filtered,
            "events_pending": st.events_pending,
            "backlog": st.backlog,
        }
        body = pl.edge_status_body(True, self.site, self.client_id, now_us(), extra=extra)
        client.publish(self.topics.edge_status, pl.encode(body), qos=1, retain=True)

    async def _pump(
        self, db: Callable[..., Awaitable[Any]], src: _Source, client: mqtt.Client
    ) -> None:
        await self._write_acks(db, src)
        if not self._connected:
            return  # the backlog waits on disk
        for name, read in (
            (ALARMS, src.alarms),
            (DEVIATIONS, src.deviations),
            (ANCHORS, src.anchors),
        ):
            await self._pump_events(db, self._streams[name], read, client)
        await self._pump_readings(db, src, client)

    async def _write_acks(self, db: Callable[..., Awaitable[Any]], src: _Source) -> None:
        for st in self._streams.values():
            if st.ack_to > st.cursor:
                target = st.ack_to
                await db(src.store.outbox_ack, DESTINATION, target, st.name)
                st.cursor = target

    async def _pump_events(
        self,
        db: Callable[..., Awaitable[Any]],
        st: _EventStream,
        read: Callable[[int, int], list[Event]],
        client: mqtt.Client,
    ) -> None:
        if st.retry_at and time.monotonic() < st.retry_at:
            return
        room = self.cfg.max_inflight_events - len(self._mids)
        if room <= 0:
            return
        events: list[Event] = await db(read, st.sent_after, room)
        # no await from here on: every mid is registered before its PUBACK can be handled
        for seq, topic, body in events:
            if not self._connected:
                break
            st.sent_after = seq
            st.order.append(seq)
            if topic is None or body is None:
                self._unpublishable += 1
                self._error(f"{st.name} row {seq} skipped (unreadable, see log)")
                st.acked.add(seq)
                continue
            info = client.publish(topic, body, qos=self.cfg.qos_events)
            # NO_CONN: paho keeps a QoS>0 message and sends it on reconnect; track it
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                st.order.pop()
                st.sent_after = st.order[-1] if st.order else st.ack_to
                self._error(f"publish of {st.name} event {seq} failed: {info.rc}")
                break
            self._mids[info.mid] = (st, seq)
            st.inflight += 1
        st.advance()
        if len(events) == room:
            self._set_wake()  # more may be waiting

    def _tag_info(self, tag: str) -> tuple[str, str]:
        unit, kind = self._tags.get(tag, ("", ""))
        return self._tag_units.get(tag, unit), kind

    def _publish_reading(self, client: mqtt.Client, seq: int, r: StoredReading) -> bool:
        """False when the broker connection is gone (the reading must be offered again)."""
        try:
            topic = self.topics.reading(r.tag)
        except TopicError as exc:
            self._unpublishable += 1
            self._error(str(exc))
            return True  # cannot ever be published here: do not block the stream on it
        unit, _ = self._tag_info(r.tag)
        body = pl.encode(pl.reading_body(seq, r, unit))
        info = client.publish(
            topic, body, qos=self.cfg.qos_readings, retain=self.cfg.readings.retain
        )
        ok = info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS or (
            # QoS 1: paho keeps the message and sends it after the reconnect
            self.cfg.qos_readings > 0 and info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN
        )
        if not ok:
            return False
        self._filter.sent(r)
        self._published_readings += 1
        return True

    async def _pump_readings(
        self, db: Callable[..., Awaitable[Any]], src: _Source, client: mqtt.Client
    ) -> None:
        rows: list[tuple[int, StoredReading]] = await db(
            src.store.readings_after, self._r_cursor, self.cfg.batch_size
        )
        if any(r.tag not in self._tags for _, r in rows):
            self._tags = await db(src.tags)
        last = self._r_cursor
        for i, (seq, r) in enumerate(rows):
            if not self._connected:
                break
            if self._filter.offer(seq, r, self._tag_info(r.tag)[1]) and not (
                self._publish_reading(client, seq, r)
            ):
                break
            last = seq
            if i % 500 == 499:
                await asyncio.sleep(0)  # let PUBACKs and commands through
        for seq, r in self._filter.due(now_us()):
            if not self._connected or not self._publish_reading(client, seq, r):
                self._filter.filtered += 1  # a held value lost to a disconnect; newer ones follow
        if last > self._r_cursor:
            self._r_cursor = last
            await db(src.store.outbox_ack, DESTINATION, last, READINGS)
        if len(rows) == self.cfg.batch_size:
            self._set_wake()

    async def _refresh_backlog(self, db: Callable[..., Awaitable[Any]], src: _Source) -> None:
        self._r_backlog = max(0, await db(src.store.last_reading_id) - self._r_cursor)
        for st in self._streams.values():
            st.backlog = await db(src.event_backlog, st.name, st.sent_after)

    # -- commands --------------------------------------------------------------------

    def _queue_command(self, raw: bytes) -> None:
        if self._commands is not None:
            self._commands.put_nowait(raw)

    async def _command_worker(self) -> None:
        # one at a time, in arrival order: an end must not overtake its start
        assert self._commands is not None
        while True:
            raw = await self._commands.get()
            await self._handle_command(raw)

    async def _handle_command(self, raw: bytes) -> None:
        try:
            cmd = pl.parse_batch_command(raw, now_us())
        except CommandError as exc:
            self._reject(str(exc), raw)
            return
        assert self._on_batch is not None
        try:
            result = self._on_batch(cmd)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # the receiver refused it: tell the MES why
            self._reject(f"refused by the edge box: {exc}", raw)
            return
        self._accepted += 1
        log.info("mqtt: batch command %s %s accepted", cmd.command, cmd.batch_id)

    def _reject(self, reason: str, raw: bytes) -> None:
        self._rejected += 1
        log.warning("mqtt: batch command rejected: %s", reason)
        with self._lock:
            client = self._client if self._connected else None
        if client is not None:
            body = pl.encode(pl.rejected_body(reason, raw, now_us()))
            client.publish(self.topics.rejected_commands, body, qos=1)

    # -- stop ------------------------------------------------------------------------

    async def _shutdown(
        self, db: Callable[..., Awaitable[Any]], src: _Source, client: mqtt.Client
    ) -> None:
        deadline = time.monotonic() + self.cfg.drain_timeout_s
        while self._mids and self._connected and time.monotonic() < deadline:
            await asyncio.sleep(0.02)  # PUBACKs arrive through call_soon_threadsafe
        with contextlib.suppress(sqlite3.Error):
            await self._write_acks(db, src)
        if self._connected:
            body = pl.edge_status_body(False, self.site, self.client_id, now_us(), "stopped")
            info = client.publish(self.topics.edge_status, pl.encode(body), qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                await asyncio.to_thread(info.wait_for_publish, 2.0)
        self._stopping = True
        client.disconnect()  # a clean DISCONNECT: the broker drops the last will
        await asyncio.to_thread(client.loop_stop)
        with self._lock:
            self._connected = False
            self._client = None
        await db(src.close)
