"""OPC UA driver on asyncua: subscriptions or polling, with honest quality and gaps.

One asyncua client per device, every network call under a timeout, reconnects with
capped exponential backoff. The driver owns reconnection itself (asyncua's
``auto_reconnect`` stays off) so that every loss is visible: one Bad reading per tag
when the link drops, one more per tag every ``poll_interval_s`` while it stays down,
and a fresh read of every node once the subscription is back.

Nothing is ever re-stamped: a value is emitted only when the server delivered it in a
notification or answered a read. Notifications go through asyncua's handler path (one
task per notification, unbounded) rather than its iterator queue, whose default
overflow policy drops the oldest events silently. Sequence-number gaps in the publish
stream are republished when the server still has them and recorded as a gap when not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

from asyncua import Client, ua
from asyncua.client.ua_client import UaClientState
from asyncua.client.ua_session import UaSession
from asyncua.common.subscription import DataChangeNotif, Subscription
from asyncua.crypto import security_policies, uacrypto
from asyncua.ua.uaerrors import UaError, UaStatusCodeError
from cryptography import x509

from collector.backoff import Backoff
from collector.driver import DeviceStatus, Driver, LinkState, Sink, sleep_or_stop
from collector.reading import Cause, Quality, Reading, now_us

log = logging.getLogger("gmp_edge.collector.opcua")

T = TypeVar("T")

SecurityMode = Literal["None", "Sign", "SignAndEncrypt"]
SecurityPolicy = Literal["None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"]
CollectMode = Literal["subscription", "polling"]

_POLICIES: dict[str, type[security_policies.SecurityPolicy]] = {
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
    "Aes128_Sha256_RsaOaep": security_policies.SecurityPolicyAes128Sha256RsaOaep,
    "Aes256_Sha256_RsaPss": security_policies.SecurityPolicyAes256Sha256RsaPss,
}

# Service results that mean the session or channel is gone, not that the data is bad.
_LINK_CODES = frozenset(
    {
        ua.StatusCodes.BadTimeout,
        ua.StatusCodes.BadCommunicationError,
        ua.StatusCodes.BadConnectionClosed,
        ua.StatusCodes.BadServerNotConnected,
        ua.StatusCodes.BadServerHalted,
        ua.StatusCodes.BadShutdown,
        ua.StatusCodes.BadSecureChannelClosed,
        ua.StatusCodes.BadSecureChannelIdInvalid,
        ua.StatusCodes.BadSessionClosed,
        ua.StatusCodes.BadSessionIdInvalid,
        ua.StatusCodes.BadSessionNotActivated,
        ua.StatusCodes.BadNoSubscription,
        ua.StatusCodes.BadSubscriptionIdInvalid,
        ua.StatusCodes.BadTooManySessions,
    }
)
_FILTER_REJECTED = frozenset(
    {
        ua.StatusCodes.BadMonitoredItemFilterUnsupported,
        ua.StatusCodes.BadMonitoredItemFilterInvalid,
        ua.StatusCodes.BadFilterNotAllowed,
    }
)

_MAX_NODES_PER_READ = ua.NodeId(
    ua.Int32(ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead)
)
_MAX_ITEMS_PER_CALL = ua.NodeId(
    ua.Int32(ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall)
)
_SERVER_STATE = ua.NodeId(ua.Int32(ua.ObjectIds.Server_ServerStatus_State))

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_SESSION_TIMEOUT_MS = 60_000  # a vanished edge box frees its server session within a minute
_MAX_REPUBLISH = 100  # bound on messages fetched back after one sequence gap
_SEQ_MAX = 0xFFFF_FFFF
_HANDLE_BASE = 1000  # monitored item client handle = base + point index
_RECENT = 8  # samples per tag remembered to recognise one delivered twice

# StatusCode bit layout (OPC UA Part 4, 7.39): severity in bits 30-31, InfoType in bits
# 10-11 (01 = DataValue), then for DataValue info the limit bits 8-9 and Overflow bit 7.
_CODE_MASK = 0xFFFF_0000
_INFOTYPE_MASK = 0x0000_0C00
_INFOTYPE_DATAVALUE = 0x0000_0400
_OVERFLOW_BIT = 0x0000_0080
_LIMIT_MASK = 0x0000_0300
_LIMIT_LOW = 0x0000_0100
_LIMIT_HIGH = 0x0000_0200


class ServerState(IntEnum):
    """``Server.ServerStatus.State`` values (OPC UA Part 5, ServerState)."""

    RUNNING = 0
    FAILED = 1
    NO_CONFIGURATION = 2
    SUSPENDED = 3
    SHUTDOWN = 4
    TEST = 5
    COMMUNICATION_FAULT = 6
    UNKNOWN = 7


@dataclass(frozen=True, slots=True)
class OpcuaDeviceSpec:
    """Connection, security and schedule of one OPC UA server.

    ``mode`` "subscription" lets the server push changes (sampled every
    ``sampling_interval_ms``, published every ``publishing_interval_ms``, up to
    ``queue_size`` values queued per item between publishes); "polling" reads every
    node every ``poll_interval_s``. In subscription mode ``poll_interval_s`` is the
    liveness check period and the Bad-reading period while the link is down.
    """

    device_id: str
    endpoint: str
    security_mode: SecurityMode = "None"
    security_policy: SecurityPolicy = "None"
    certificate: str | None = None
    private_key: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in logs or reprs
    mode: CollectMode = "subscription"
    sampling_interval_ms: float = 500.0
    publishing_interval_ms: float = 1000.0
    queue_size: int = 100
    poll_interval_s: float = 1.0
    timeout_s: float = 5.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not self.endpoint.startswith("opc.tcp://"):
            problems.append(f"endpoint must start with opc.tcp://, got {self.endpoint!r}")
        if self.security_mode not in ("None", "Sign", "SignAndEncrypt"):
            problems.append(f"unknown security_mode {self.security_mode!r}")
        if self.security_policy != "None" and self.security_policy not in _POLICIES:
            problems.append(f"unknown security_policy {self.security_policy!r}")
        if (self.security_mode == "None") != (self.security_policy == "None"):
            problems.append("security_mode and security_policy must both be None or both be set")
        if self.security_mode != "None" and not (self.certificate and self.private_key):
            problems.append("a secured endpoint needs certificate and private_key")
        if self.mode not in ("subscription", "polling"):
            problems.append(f"unknown mode {self.mode!r}")
        if self.sampling_interval_ms < 0 or self.publishing_interval_ms <= 0:
            problems.append("sampling_interval_ms must be >= 0 and publishing_interval_ms > 0")
        if self.queue_size < 1:
            problems.append(f"queue_size must be >= 1, got {self.queue_size}")
        if self.poll_interval_s <= 0 or self.timeout_s <= 0:
            problems.append("poll_interval_s and timeout_s must be > 0")
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            problems.append("need 0 < reconnect_min_s <= reconnect_max_s")
        if problems:
            raise ValueError(f"OPC UA device {self.device_id!r}: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class OpcuaPoint:
    """One tag fed by one variable node, e.g. ``ns=2;s=TabletPress.MainCompressionForce``."""

    tag: str
    node_id: str


# -- pure helpers (no network; unit-tested) ---------------------------------------------


def status_name(code: int) -> str:
    """The symbolic name of a StatusCode, ignoring its info bits (overflow, limits)."""
    name, _ = ua.status_codes.get_name_and_doc(code & _CODE_MASK)
    return name


def status_text(code: int) -> str:
    """Name and hex value of a StatusCode, e.g. ``BadNodeIdUnknown (0x80340000)``."""
    return f"{status_name(code)} (0x{code:08X})"


def has_overflow(code: int) -> bool:
    """True when the server's monitored-item queue overflowed before this value."""
    return (code & _INFOTYPE_MASK) == _INFOTYPE_DATAVALUE and bool(code & _OVERFLOW_BIT)


def limit_note(code: int) -> str | None:
    """ "low limit"/"high limit" when the source says the value sits at its limit, else None."""
    if (code & _INFOTYPE_MASK) != _INFOTYPE_DATAVALUE:
        return None
    bits = code & _LIMIT_MASK
    if bits == _LIMIT_LOW:
        return "value at the source's low limit"
    if bits == _LIMIT_HIGH:
        return "value at the source's high limit"
    return None  # none, or "constant": nothing suspicious about the value itself


def datetime_to_us(dt: datetime | None) -> int | None:
    """A UA DateTime as integer µs since the Unix epoch; None when absent or unset.

    asyncua decodes timestamps as aware UTC datetimes; a naive one is taken as UTC.
    The encoded "no timestamp" (0, i.e. 1601-01-01) and anything before 1970 count as
    absent rather than as a real instant.
    """
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    us = (dt - _EPOCH) // _US
    return us if us > 0 else None


def convert_value(raw: Any) -> tuple[float | str | None, str | None]:
    """A variant's Python value as a reading value, or (None, reason) if unusable.

    Numbers become float, booleans 0.0/1.0, strings stay strings (LocalizedText gives its
    text). NaN/Inf, null and anything else (arrays, structures, byte strings) are
    refused with a reason, never coerced.
    """
    if isinstance(raw, bool):
        return (1.0 if raw else 0.0), None
    if isinstance(raw, int):
        return float(raw), None
    if isinstance(raw, float):
        if not math.isfinite(raw):
            return None, f"device returned {raw}"
        return raw, None
    if isinstance(raw, str):
        return raw, None
    if isinstance(raw, ua.LocalizedText):
        return (raw.Text or ""), None
    if raw is None:
        return None, "device returned no value (null variant)"
    return None, f"unsupported value type {type(raw).__name__}"


def datavalue_to_reading(tag: str, dv: ua.DataValue | None, ts_edge_us: int) -> Reading:
    """One DataValue (from a read or a notification) as a Reading.

    Good → GOOD; Uncertain → UNCERTAIN with the status name as message; Bad → BAD with
    no value and the status code in the message (cause DEVICE). The source timestamp is
    kept, falling back to the server timestamp. An overflow bit (the server discarded
    queued values before this one) or a low/high limit bit makes a Good value Uncertain,
    so the record shows it.
    """
    if dv is None:
        return Reading.bad(tag, ts_edge_us, "server returned no DataValue", Cause.DEVICE)
    code = int(dv.StatusCode.value) if dv.StatusCode is not None else 0
    ts_source = datetime_to_us(dv.SourceTimestamp)
    if ts_source is None:
        ts_source = datetime_to_us(dv.ServerTimestamp)
    notes: list[str] = []
    if has_overflow(code):
        notes.append("server queue overflow: earlier values were discarded")
    limit = limit_note(code)
    if limit:
        notes.append(limit)
    severity = code >> 30
    if severity >= 2:  # Bad (and the reserved 11, which clients treat as Bad)
        message = "; ".join([status_text(code), *notes])
        return Reading(tag, None, Quality.BAD, ts_edge_us, ts_source, message, Cause.DEVICE)
    raw = dv.Value.Value if dv.Value is not None else None
    value, problem = convert_value(raw)
    if problem is not None:
        message = "; ".join([problem, *([status_name(code)] if severity else []), *notes])
        return Reading(tag, None, Quality.BAD, ts_edge_us, ts_source, message, Cause.DEVICE)
    if severity == 1:
        message = "; ".join([status_name(code), *notes])
        return Reading(tag, value, Quality.UNCERTAIN, ts_edge_us, ts_source, message, Cause.DEVICE)
    if notes:
        return Reading(
            tag, value, Quality.UNCERTAIN, ts_edge_us, ts_source, "; ".join(notes), Cause.DEVICE
        )
    return Reading(tag, value, Quality.GOOD, ts_edge_us, ts_source)


def operation_limit(raw: Any) -> int:
    """A server OperationLimits value as a chunk size; 0 means unlimited (also for junk)."""
    if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
        return 0
    return raw


def chunked(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """Split ``items`` into consecutive chunks of at most ``size``; ``size`` <= 0 means one."""
    if not items:
        return []
    if size <= 0:
        return [items]
    return [items[i : i + size] for i in range(0, len(items), size)]


def next_sequence_number(n: int) -> int:
    """The sequence number after ``n``: they wrap from 2**32-1 to 1 (0 is never used)."""
    return 1 if n >= _SEQ_MAX else n + 1


def sequence_gap(last: int | None, seq: int) -> int:
    """How many notification messages were lost between data message ``last`` and ``seq``.

    A data message should carry ``last + 1``; a keep-alive carries the next number to be
    used, also ``last + 1``, without consuming it. Before the first data message nothing
    can be judged (``last`` None); a repeated or older number is not a loss.
    """
    if last is None or seq <= 0:
        return 0
    distance = (seq - next_sequence_number(last)) % _SEQ_MAX  # 1.._SEQ_MAX is a ring
    return distance if distance < _SEQ_MAX // 2 else 0


def keepalive_count(publishing_interval_ms: float, poll_interval_s: float) -> int:
    """Publishing intervals per keep-alive so the server speaks at least every poll interval."""
    return max(1, math.floor(poll_interval_s * 1000.0 / publishing_interval_ms))


def describe_error(exc: BaseException, timeout_s: float | None = None) -> str:
    """A short, human-readable reason for a failed network call."""
    if isinstance(exc, UaStatusCodeError):
        return status_text(int(exc.code))
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:g} s" if timeout_s else "timed out"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def strip_credentials(endpoint: str) -> str:
    """The endpoint URL without any ``user:password@`` part, for messages and the API."""
    parts = urlsplit(endpoint)
    if "@" not in parts.netloc:
        return endpoint
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


# -- the link: one connected client and its subscription --------------------------------


class _LinkError(Exception):
    """The connection is unusable (timeout, closed, session gone): reconnect."""


class _Link:
    """One connected client, its subscription and what it learnt about the server."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.subscription: _TrackedSubscription | None = None
        self.max_read = 0  # MaxNodesPerRead, 0 = unlimited
        self.max_items = 0  # MaxMonitoredItemsPerCall, 0 = unlimited
        self.use_filter = True
        self.lost: str | None = None  # set by callbacks when the link broke
        self.closed = False
        self.failed_items: dict[int, int] = {}  # point index → StatusCode of the failed create
        self.last_publish = time.monotonic()
        self.last_publish_us = now_us()
        self.last_seq: int | None = None
        self.stale_after_s = math.inf
        self.resync: list[str] = []  # reasons to re-read everything (lost notifications)
        self.received = 0  # data-change items seen in publish responses
        self.handled = 0  # data-change items that reached the handler


class _TrackedSubscription(Subscription):
    """A Subscription that checks publish sequence numbers before dispatching.

    asyncua's publish loop acknowledges what it receives and never asks for what it
    missed; here a gap is republished from the server's retransmission queue when
    possible and otherwise recorded, so no lost notification goes unnoticed.
    """

    def __init__(
        self,
        session: Any,
        params: ua.CreateSubscriptionParameters,
        handler: _Handler,
        driver: OpcuaDriver,
        link: _Link,
    ) -> None:
        super().__init__(session, params, handler)
        self._driver = driver
        self._link = link

    async def publish_callback(self, publish_result: ua.PublishResult) -> None:
        """Check the sequence number, fetch back missed messages, then dispatch."""
        link = self._link
        msg = publish_result.NotificationMessage
        link.last_publish = time.monotonic()
        link.last_publish_us = now_us()
        data = msg.NotificationData or []
        seq = int(msg.SequenceNumber or 0)
        lost = sequence_gap(link.last_seq, seq)
        if lost and link.last_seq is not None:
            await self._recover(next_sequence_number(link.last_seq), lost)
        if data and seq:  # seq 0: asyncua's own "subscription lost" status, not the server's
            link.last_seq = seq
            link.received += sum(
                len(n.MonitoredItems) for n in data if isinstance(n, ua.DataChangeNotification)
            )
        await super().publish_callback(publish_result)

    async def _recover(self, first: int, count: int) -> None:
        link, driver = self._link, self._driver
        recovered = 0
        sub_id, session = self.subscription_id, self.server
        attempts = min(count, _MAX_REPUBLISH)
        if sub_id is None or not isinstance(session, UaSession):
            attempts = 0
        seq = first
        for _ in range(attempts):
            assert sub_id is not None and isinstance(session, UaSession)
            seq, wanted = next_sequence_number(seq), seq
            try:
                msg = await asyncio.wait_for(
                    session.republish(sub_id, wanted), driver.spec.timeout_s
                )
            except UaStatusCodeError as exc:
                if int(exc.code) in _LINK_CODES:
                    break  # the link itself is failing: the loss path takes over
                continue  # BadMessageNotAvailable: this one is gone, try the next
            except (UaError, TimeoutError, OSError):
                break
            if not msg.NotificationData:
                continue
            recovered += 1
            link.received += sum(
                len(n.MonitoredItems)
                for n in msg.NotificationData
                if isinstance(n, ua.DataChangeNotification)
            )
            await super().publish_callback(ua.PublishResult(sub_id, NotificationMessage=msg))
        lost = count - recovered
        driver._bump("republished_messages", recovered)
        if lost:
            driver._bump("lost_messages", lost)
            reason = (
                f"{lost} notification message(s) lost (publish sequence gap from {first}) "
                "and not available for republish"
            )
            log.warning("%s: %s", driver.spec.device_id, reason)
            link.resync.append(reason)
            driver._wake.set()


class _Handler:
    """asyncua subscription handler bound to one link (plain methods: no await needed)."""

    def __init__(self, driver: OpcuaDriver, link: _Link) -> None:
        self._driver = driver
        self._link = link

    def datachange_notification(self, node: Any, val: Any, data: DataChangeNotif) -> None:
        """A monitored item changed: convert and queue it."""
        self._driver._on_datachange(self._link, data)

    def status_change_notification(self, status: ua.StatusChangeNotification) -> None:
        """The subscription's status changed (BadShutdown on loss, BadTimeout on expiry)."""
        self._driver._on_status_change(self._link, status)


# -- the driver -------------------------------------------------------------------------


class OpcuaDriver(Driver):
    """Collects one OPC UA server's variables by subscription or polling."""

    def __init__(self, spec: OpcuaDeviceSpec, points: Sequence[OpcuaPoint]) -> None:
        self.spec = spec
        self.points = list(points)
        seen: set[str] = set()
        for p in self.points:
            if p.tag in seen:
                raise ValueError(f"OPC UA device {spec.device_id!r}: tag {p.tag!r} listed twice")
            seen.add(p.tag)
        self._endpoint = strip_credentials(spec.endpoint)
        self.status = DeviceStatus(spec.device_id, "opcua", self._endpoint)
        # Set when the server refuses subscriptions: from then on this driver polls.
        self._fallback: str | None = None
        # Node ids are parsed once; a malformed one is a configuration error that must
        # not take the other tags down, so it becomes a Bad reading for its own tag.
        self._node_ids: list[ua.NodeId | None] = []
        self._invalid: dict[int, str] = {}
        for i, p in enumerate(self.points):
            try:
                self._node_ids.append(ua.NodeId.from_string(p.node_id))
            except (ValueError, UaError, TypeError) as exc:
                self._node_ids.append(None)
                self._invalid[i] = f"invalid node id {p.node_id!r}: {exc}"
                log.error("%s: tag %s: %s", spec.device_id, p.tag, self._invalid[i])
        self._valid = [i for i in range(len(self.points)) if i not in self._invalid]
        self._backoff = Backoff(spec.reconnect_min_s, spec.reconnect_max_s)
        self._pending: list[Reading] = []
        self._recent: dict[str, deque[tuple[object, ...]]] = {}
        self._wake = asyncio.Event()
        self._attempt_connected = False
        self._counters: dict[str, int] = {}
        for key in (
            "notifications",
            "overflows",
            "duplicates_suppressed",
            "late_notifications",
            "unrouted_notifications",
            "republished_messages",
            "lost_messages",
        ):
            self._bump(key, 0)

    @property
    def tags(self) -> list[str]:
        """Every tag path this driver produces."""
        return [p.tag for p in self.points]

    # -- bookkeeping ---------------------------------------------------------------------

    def _bump(self, key: str, n: int = 1) -> None:
        """Add to a counter shown in ``status.extra``."""
        self._counters[key] = self._counters.get(key, 0) + n
        self.status.extra[key] = self._counters[key]

    def _error(self, message: str) -> None:
        self.status.last_error = message
        self.status.last_error_us = now_us()

    def _all_bad(self, message: str, cause: Cause) -> list[Reading]:
        ts = now_us()
        return [Reading.bad(t, ts, message, cause) for t in self.tags]

    def _queue(self, reading: Reading, dedupe: bool) -> None:
        """Queue a reading for the sink, skipping a sample already emitted this session.

        The same sample (same source timestamp, status and value) reaches us twice right
        after subscribing: once from the initial read, once as the monitored item's
        initial notification, in either order and possibly with newer notifications in
        between. Only one of them is recorded. Without a source timestamp two readings
        cannot be told apart as the same sample, so both are kept.
        """
        if reading.ts_source_us is None:
            self._pending.append(reading)
            return
        sig = (reading.quality, reading.message, reading.value, reading.ts_source_us)
        recent = self._recent.setdefault(reading.tag, deque(maxlen=_RECENT))
        if dedupe and sig in recent:
            self._bump("duplicates_suppressed")
            return
        recent.append(sig)
        self._pending.append(reading)

    async def _flush(self, sink: Sink) -> None:
        """Hand everything queued to the sink, in arrival order."""
        while self._pending:
            batch, self._pending = self._pending, []
            self.status.readings += len(batch)
            if any(r.quality is not Quality.BAD for r in batch):
                self.status.last_good_us = now_us()
            await sink.put(batch)

    async def _emit(self, sink: Sink, readings: Iterable[Reading]) -> None:
        """Queue readings (no de-duplication) and flush."""
        for r in readings:
            self._queue(r, dedupe=False)
        await self._flush(sink)

    # -- notification path (called from asyncua tasks) -----------------------------------

    def _on_datachange(self, link: _Link, data: DataChangeNotif) -> None:
        link.handled += 1
        if link.closed:
            # Only reachable if asyncua dispatches after the loss was drained; counted
            # and logged, because emitting it after the loss' Bad readings would close
            # the gap with a value older than the gap.
            self._bump("late_notifications")
            log.warning("%s: notification after link close discarded", self.spec.device_id)
            return
        item = data.monitored_item
        index = item.ClientHandle - _HANDLE_BASE
        if not 0 <= index < len(self.points):
            self._bump("unrouted_notifications")
            log.warning("%s: notification for unknown handle %s", self.spec.device_id, index)
            return
        self._bump("notifications")
        dv = item.Value
        if dv is not None and dv.StatusCode is not None and has_overflow(dv.StatusCode.value):
            self._bump("overflows")
        self._queue(datavalue_to_reading(self.points[index].tag, dv, now_us()), dedupe=True)
        self._wake.set()

    def _on_status_change(self, link: _Link, status: ua.StatusChangeNotification) -> None:
        code = int(status.Status.value) if status.Status is not None else 0
        if link.closed or (code >> 30) < 2:  # Good/Uncertain status changes are news, not loss
            return
        link.lost = link.lost or f"subscription status {status_text(code)}"
        self._wake.set()

    # -- connecting ----------------------------------------------------------------------

    async def _timed(self, aw: Any, what: str, budget: float | None = None) -> Any:
        """Await a network call under the device timeout; link-level failures → _LinkError."""
        limit = budget or self.spec.timeout_s
        try:
            return await asyncio.wait_for(aw, limit)
        except TimeoutError:
            raise _LinkError(f"{what}: no answer within {limit:g} s") from None
        except UaStatusCodeError as exc:
            if int(exc.code) in _LINK_CODES:
                raise _LinkError(f"{what}: {status_text(int(exc.code))}") from None
            raise
        except (OSError, UaError) as exc:
            raise _LinkError(f"{what}: {describe_error(exc)}") from None

    async def _apply_security(self, client: Client) -> None:
        spec = self.spec
        if spec.security_mode == "None":
            return
        assert spec.certificate is not None and spec.private_key is not None
        # The server checks that the session's ApplicationUri matches the certificate.
        with contextlib.suppress(Exception):
            cert = await uacrypto.load_certificate(spec.certificate)
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
            if uris:
                client.application_uri = uris[0]
        await self._timed(
            client.set_security(
                _POLICIES[spec.security_policy],
                spec.certificate,
                spec.private_key,
                mode=getattr(ua.MessageSecurityMode, spec.security_mode),
            ),
            "security setup (GetEndpoints)",
        )

    async def _open_link(self) -> _Link:
        """Connect, learn limits and (subscription mode) subscribe and read every node.

        The initial readings are queued the moment the read answers, so that a
        notification of the same sample, before or after, is recognised as such.
        """
        spec = self.spec
        client = Client(
            spec.endpoint,
            timeout=spec.timeout_s,
            # asyncua's own health probe: never tighter than one request timeout
            watchdog_intervall=max(spec.timeout_s, spec.poll_interval_s),
        )
        client.name = "gmp-edge"
        client.description = f"gmp-edge collector for {spec.device_id}"
        client.application_uri = "urn:gmp-edge:collector"
        client.session_timeout = _SESSION_TIMEOUT_MS
        if spec.username:
            client.set_user(spec.username)
        if spec.password:
            client.set_password(spec.password)
        link = _Link(client)

        async def lost(exc: Exception) -> None:
            link.lost = link.lost or f"connection lost ({describe_error(exc)})"
            self._wake.set()

        client.connection_lost_callback = lost
        self._attempt_connected = False
        try:
            await self._apply_security(client)
            # connect = socket, hello, channel, session, activate: several round trips
            await self._timed(client.connect(), "connect", spec.timeout_s * 4)
            self._attempt_connected = True
            await self._read_limits(link)
            self._recent.clear()
            if self._subscribing:  # polling reads everything at once anyway
                try:
                    initial = await self._subscribe(link)
                except UaStatusCodeError as exc:
                    # e.g. BadServiceUnsupported, BadTooManySubscriptions: a server that
                    # cannot subscribe is still read, by polling, and the status says so
                    self._fallback = f"subscriptions refused ({status_text(int(exc.code))})"
                    self.status.extra["mode"] = f"polling (fallback: {self._fallback})"
                    log.warning("%s: %s; falling back to polling", spec.device_id, self._fallback)
                    await self._close_link(link, delete_subscription=True)
                    raise _LinkError(f"{self._fallback}; reconnecting to poll") from None
                initial += [
                    Reading.bad(self.points[i].tag, now_us(), msg, Cause.COLLECTOR)
                    for i, msg in self._invalid.items()
                ]
                # a fresh value for every tag right after (re)subscribing
                wanted = [i for i in self._valid if i not in link.failed_items]
                initial += await self._read(link, wanted)
                for r in initial:  # no await since the read answered: nothing slips between
                    self._queue(r, dedupe=True)
        except BaseException:
            self._attempt_connected = False
            link.closed = True
            await self._close_link(link, delete_subscription=False)
            raise
        return link

    async def _read_limits(self, link: _Link) -> None:
        ids = [_MAX_NODES_PER_READ, _MAX_ITEMS_PER_CALL]
        try:
            dvs = await self._timed(
                link.client.uaclient.read_attributes(ids, ua.AttributeIds.Value), "read limits"
            )
        except UaStatusCodeError as exc:  # a server without the nodes: no limits known
            log.info("%s: no operation limits (%s)", self.spec.device_id, describe_error(exc))
            dvs = []
        values = [
            dv.Value.Value
            if (dv.StatusCode is None or dv.StatusCode.is_good()) and dv.Value is not None
            else None
            for dv in dvs
        ] + [None, None]
        link.max_read = operation_limit(values[0])
        link.max_items = operation_limit(values[1])
        self.status.extra["max_nodes_per_read"] = link.max_read
        self.status.extra["max_monitored_items_per_call"] = link.max_items

    @property
    def _subscribing(self) -> bool:
        """Subscription mode, unless the server refused subscriptions (polling fallback)."""
        return self.spec.mode == "subscription" and self._fallback is None

    async def _subscribe(self, link: _Link) -> list[Reading]:
        """Create the subscription and its monitored items; Bad readings for failed items."""
        spec = self.spec
        params = ua.CreateSubscriptionParameters()
        params.RequestedPublishingInterval = spec.publishing_interval_ms
        params.RequestedMaxKeepAliveCount = keepalive_count(
            spec.publishing_interval_ms, spec.poll_interval_s
        )
        # Part 4 requires lifetime >= 3 x keep-alive; ours rides out a minute without
        # publish requests so a slow client never loses its subscription.
        params.RequestedLifetimeCount = max(
            params.RequestedMaxKeepAliveCount * 10,
            math.ceil(60_000 / spec.publishing_interval_ms),
        )
        params.MaxNotificationsPerPublish = 0  # unlimited: never truncate a publish
        params.PublishingEnabled = True
        params.Priority = 0
        sub = _TrackedSubscription(
            link.client.uaclient.session, params, _Handler(self, link), self, link
        )
        result = await self._timed(sub.init(), "CreateSubscription")
        link.subscription = sub
        interval_s = float(result.RevisedPublishingInterval) / 1000.0
        keepalive_s = interval_s * max(1, int(result.RevisedMaxKeepAliveCount))
        # silence longer than three keep-alives (plus a request timeout) means a dead link
        link.stale_after_s = 3 * keepalive_s + spec.timeout_s
        link.last_publish = time.monotonic()
        self.status.extra["subscription_id"] = sub.subscription_id
        self.status.extra["revised_publishing_interval_ms"] = float(
            result.RevisedPublishingInterval
        )
        self.status.extra["keepalive_s"] = keepalive_s
        failures = await self._create_items(link, self._valid)
        link.failed_items = failures
        self.status.extra["failed_items"] = len(failures)
        ts = now_us()
        return [
            Reading.bad(
                self.points[i].tag,
                ts,
                f"cannot monitor {self.points[i].node_id}: {status_text(code)}",
                Cause.DEVICE,
            )
            for i, code in failures.items()
        ]

    def _nid(self, index: int) -> ua.NodeId:
        node_id = self._node_ids[index]
        assert node_id is not None, "only valid points are read or monitored"
        return node_id

    def _item_request(self, index: int, with_filter: bool) -> ua.MonitoredItemCreateRequest:
        rv = ua.ReadValueId()
        rv.NodeId = self._nid(index)
        rv.AttributeId = ua.AttributeIds.Value
        mp = ua.MonitoringParameters()
        mp.ClientHandle = _HANDLE_BASE + index
        mp.SamplingInterval = self.spec.sampling_interval_ms
        mp.QueueSize = self.spec.queue_size
        mp.DiscardOldest = True
        if with_filter:
            # report a new source timestamp even when the value repeats: proof of life
            mp.Filter = ua.DataChangeFilter(Trigger=ua.DataChangeTrigger.StatusValueTimestamp)
        mir = ua.MonitoredItemCreateRequest()
        mir.ItemToMonitor = rv
        mir.MonitoringMode = ua.MonitoringMode.Reporting
        mir.RequestedParameters = mp
        return mir

    async def _create_items(self, link: _Link, indices: Sequence[int]) -> dict[int, int]:
        """Create monitored items in chunks of MaxMonitoredItemsPerCall; failures by index."""
        sub = link.subscription
        assert sub is not None
        failures: dict[int, int] = {}
        todo = list(indices)
        while todo:
            size = link.max_items or len(todo)
            chunk, rest = todo[:size], todo[size:]
            requests = [self._item_request(i, link.use_filter) for i in chunk]
            try:
                results = await self._timed(
                    sub.create_monitored_items(requests), "CreateMonitoredItems"
                )
            except UaStatusCodeError as exc:
                code = int(exc.code)
                if code == ua.StatusCodes.BadTooManyOperations and size > 1:
                    link.max_items = max(1, size // 2)  # the server's real limit is lower
                    continue
                failures.update(dict.fromkeys(chunk, code))
                todo = rest
                continue
            retry: list[int] = []
            for i, res in zip(chunk, results, strict=False):
                if isinstance(res, ua.StatusCode):
                    if link.use_filter and res.value in _FILTER_REJECTED:
                        retry.append(i)
                    else:
                        failures[i] = int(res.value)
            for i in chunk[len(results) :]:
                failures[i] = ua.StatusCodes.BadUnexpectedError
            if retry:
                log.info(
                    "%s: server rejects the data-change filter; monitoring without it",
                    self.spec.device_id,
                )
                link.use_filter = False
            todo = retry + rest
        return failures

    async def _read(self, link: _Link, indices: Sequence[int]) -> list[Reading]:
        """Read the nodes' values in chunks of MaxNodesPerRead; one reading per index."""
        out: list[Reading] = []
        todo = list(indices)
        while todo:
            size = link.max_read or len(todo)
            chunk, rest = todo[:size], todo[size:]
            ids = [self._nid(i) for i in chunk]
            try:
                dvs = await self._timed(
                    link.client.uaclient.read_attributes(ids, ua.AttributeIds.Value), "Read"
                )
            except UaStatusCodeError as exc:
                code = int(exc.code)
                if code == ua.StatusCodes.BadTooManyOperations and size > 1:
                    link.max_read = max(1, size // 2)
                    self.status.extra["max_nodes_per_read"] = link.max_read
                    continue
                ts = now_us()
                out += [
                    Reading.bad(self.points[i].tag, ts, f"Read: {status_text(code)}", Cause.DEVICE)
                    for i in chunk
                ]
                todo = rest
                continue
            ts = now_us()
            for i, dv in zip(chunk, dvs, strict=False):
                out.append(datavalue_to_reading(self.points[i].tag, dv, ts))
            out += [
                Reading.bad(
                    self.points[i].tag,
                    ts,
                    f"server answered {len(dvs)} of {len(chunk)} nodes",
                    Cause.DEVICE,
                )
                for i in chunk[len(dvs) :]
            ]
            todo = rest
        return out

    async def _close_link(self, link: _Link, delete_subscription: bool) -> None:
        """Tear a link down; every step bounded, nothing raised."""
        budget = self.spec.timeout_s
        if delete_subscription and link.subscription is not None and link.lost is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(link.subscription.delete(), budget)
        try:
            await asyncio.wait_for(link.client.disconnect(), budget)
        except Exception as exc:  # teardown must not fail the driver
            log.debug("%s: disconnect: %s", self.spec.device_id, describe_error(exc, budget))
            with contextlib.suppress(Exception):
                link.client.disconnect_socket()

    # -- while connected -----------------------------------------------------------------

    async def _probe(self, link: _Link) -> str | None:
        """Is the link alive? A reason when not. One cheap read per poll interval."""
        if link.lost:
            return link.lost
        if link.client.state is not UaClientState.CONNECTED:
            return f"connection lost (client {link.client.state.value})"
        if link.subscription is not None:
            silent = time.monotonic() - link.last_publish
            if silent > link.stale_after_s:
                return f"no publish response or keep-alive for {silent:.1f} s"
        try:
            dvs = await self._timed(
                link.client.uaclient.read_attributes([_SERVER_STATE], ua.AttributeIds.Value),
                "server status read",
            )
        except _LinkError as exc:
            return str(exc)
        except UaStatusCodeError:
            return None  # the server answered: the link is alive
        raw = dvs[0].Value.Value if dvs and dvs[0].Value is not None else None
        if isinstance(raw, int) and raw != ServerState.RUNNING:
            try:
                state = ServerState(raw).name
            except ValueError:
                state = str(raw)
            return f"server state is {state}, not RUNNING"
        return None

    async def _drain(self, link: _Link) -> None:
        """Let asyncua's already-scheduled handler tasks run before declaring a loss."""
        for _ in range(10):
            if link.handled >= link.received:
                break
            await asyncio.sleep(0)
        link.closed = True

    async def _serve_subscription(self, link: _Link, sink: Sink, stop: asyncio.Event) -> str | None:
        """Deliver notifications until stop (None) or the link is lost (the reason)."""
        interval = self.spec.poll_interval_s
        retry_every = self.spec.reconnect_max_s
        next_probe = time.monotonic() + interval
        next_retry = time.monotonic() + retry_every
        while True:
            self._wake.clear()
            await self._flush(sink)
            if stop.is_set():
                return None
            if link.lost:
                return link.lost
            now = time.monotonic()
            if now >= next_probe:
                reason = await self._probe(link)
                if reason:
                    return reason
                next_probe += interval
                if next_probe < time.monotonic():
                    next_probe = time.monotonic() + interval
            if link.resync:
                reason = await self._resync(link, sink)
                if reason:
                    return reason
            if link.failed_items and time.monotonic() >= next_retry:
                reason = await self._retry_items(link)
                if reason:
                    return reason
                next_retry = time.monotonic() + retry_every
            deadline = next_probe if not link.failed_items else min(next_probe, next_retry)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, deadline - time.monotonic()))

    async def _resync(self, link: _Link, sink: Sink) -> str | None:
        """After lost notifications: record the gap and read every node again."""
        reasons, link.resync = link.resync, []
        start = link.last_publish_us
        try:
            readings = await self._read(
                link, [i for i in self._valid if i not in link.failed_items]
            )
        except _LinkError as exc:
            return str(exc)
        self._error("; ".join(reasons))
        await self._flush(sink)
        await sink.gap(
            self.tags,
            min(start, now_us()),
            now_us(),
            Cause.COLLECTOR,
            "; ".join(reasons) + "; every node read again",
        )
        await self._emit(sink, readings)
        return None

    async def _retry_items(self, link: _Link) -> str | None:
        """Try again to monitor nodes the server refused (they may exist by now)."""
        try:
            failures = await self._create_items(link, sorted(link.failed_items))
        except _LinkError as exc:
            return str(exc)
        recovered = set(link.failed_items) - set(failures)
        if recovered:
            log.info(
                "%s: now monitoring %s",
                self.spec.device_id,
                ", ".join(self.points[i].tag for i in sorted(recovered)),
            )
        link.failed_items = failures
        self.status.extra["failed_items"] = len(failures)
        return None

    async def _serve_polling(self, link: _Link, sink: Sink, stop: asyncio.Event) -> str | None:
        """Read every node every poll interval until stop (None) or a link failure."""
        interval = self.spec.poll_interval_s
        due = time.monotonic()
        while True:
            if stop.is_set():
                return None
            t0 = time.perf_counter()
            try:
                readings = await self._read(link, self._valid)
            except _LinkError as exc:
                return link.lost or str(exc)  # the transport's reason beats the symptom
            ts = now_us()
            readings += [
                Reading.bad(self.points[i].tag, ts, msg, Cause.COLLECTOR)
                for i, msg in self._invalid.items()
            ]
            self.status.last_poll_ms = (time.perf_counter() - t0) * 1000
            self.status.polls += 1
            if readings and all(r.quality is Quality.BAD for r in readings):
                self.status.failed_polls += 1
            await self._emit(sink, readings)
            due += interval
            late = time.monotonic() - due
            if late > 0:
                missed = int(late // interval) + 1
                self.status.missed_polls += missed
                due += missed * interval
                end = now_us()
                if any(r.quality is not Quality.BAD for r in readings):
                    # a failing tag is already in a gap; a healthy one needs this record
                    await sink.gap(
                        self.tags,
                        end - int(late * 1_000_000),
                        end,
                        Cause.COLLECTOR,
                        f"{missed} polls missed: the poll took longer than the "
                        f"{interval:g} s interval",
                    )
            if await sleep_or_stop(stop, due - time.monotonic()):
                return None

    # -- while disconnected ----------------------------------------------------------------

    async def _bad_tick(self, sink: Sink) -> None:
        """One Bad reading per tag while the link is down (counted as a failed poll)."""
        self.status.polls += 1
        self.status.failed_polls += 1
        await self._emit(
            sink,
            self._all_bad(
                self.status.last_error or f"{self._endpoint}: not connected", Cause.NETWORK
            ),
        )

    async def _reconnect(
        self, sink: Sink, stop: asyncio.Event, next_tick: float | None, first_delay: float
    ) -> _Link | None:
        """Try to connect with backoff, emitting Bad readings every poll interval meanwhile.

        ``next_tick`` None means nothing was emitted yet: the first failure emits at once.
        Returns the new link (its initial readings queued), or None when ``stop`` was set.
        """
        interval = self.spec.poll_interval_s
        next_attempt = time.monotonic() + first_delay
        attempt: asyncio.Task[_Link] | None = None
        stop_wait = asyncio.create_task(stop.wait())
        handed_over = False
        try:
            while True:
                if attempt is None and time.monotonic() >= next_attempt:
                    self.status.state = LinkState.CONNECTING
                    attempt = asyncio.create_task(self._open_link())
                    await asyncio.sleep(0)  # let it start, so the flag below is current
                # Once an attempt has a session its notifications may already be queued;
                # a Bad tick after them would reopen the gap they closed, so hold it back
                # until the attempt has either succeeded or failed.
                holding = attempt is not None and self._attempt_connected
                if not holding and next_tick is not None and time.monotonic() >= next_tick:
                    await self._bad_tick(sink)
                    next_tick += interval
                    if next_tick < time.monotonic():
                        next_tick = time.monotonic() + interval
                deadlines = [] if holding or next_tick is None else [next_tick]
                if attempt is None:
                    deadlines.append(next_attempt)
                timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
                if holding and timeout is None:
                    timeout = interval  # re-check the flag now and then
                waiting: set[asyncio.Future[Any]] = {stop_wait}
                if attempt is not None:
                    waiting.add(attempt)
                done, _ = await asyncio.wait(
                    waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if stop.is_set():
                    return None
                if attempt is None or attempt not in done:
                    continue
                try:
                    result = attempt.result()
                except Exception as exc:  # every failure is retried
                    attempt = None
                    why = str(exc) if isinstance(exc, _LinkError) else describe_error(exc)
                    self._error(f"{self._endpoint}: cannot connect: {why}")
                    self.status.state = LinkState.DISCONNECTED
                    log.info("%s: %s", self.spec.device_id, self.status.last_error)
                    if next_tick is None:
                        await self._bad_tick(sink)
                        next_tick = time.monotonic() + interval
                    next_attempt = time.monotonic() + self._backoff.next_delay()
                    continue
                handed_over = True
                return result
        finally:
            stop_wait.cancel()
            if attempt is not None and not handed_over:
                if not attempt.done():
                    attempt.cancel()  # its own cleanup closes the half-open client
                with contextlib.suppress(BaseException):
                    link = await attempt
                    link.closed = True
                    await self._close_link(link, delete_subscription=True)

    # -- the loop ----------------------------------------------------------------------------

    async def run(self, sink: Sink, stop: asyncio.Event) -> None:
        """Collect until ``stop``; see :class:`collector.driver.Driver`."""
        interval = self.spec.poll_interval_s
        link: _Link | None = None
        next_tick: float | None = None
        first_delay = 0.0
        cancelled = False
        waker = asyncio.create_task(self._wake_on(stop))
        try:
            while not stop.is_set():
                link = await self._reconnect(sink, stop, next_tick, first_delay)
                if link is None:
                    break
                connected_at = time.monotonic()
                self.status.state = LinkState.CONNECTED
                self.status.connects += 1
                log.info(
                    "%s: connected to %s (%s)", self.spec.device_id, self._endpoint, self.spec.mode
                )
                try:
                    if self._subscribing:
                        reason = await self._serve_subscription(link, sink, stop)
                    else:
                        reason = await self._serve_polling(link, sink, stop)
                except _LinkError as exc:
                    reason = str(exc)
                except Exception as exc:  # a bug must not stop collection silently
                    log.exception("%s: collector error", self.spec.device_id)
                    reason = f"collector error: {exc!r}"
                if reason is None:  # stop requested
                    break
                await self._drain(link)
                await self._flush(sink)  # values received before the loss go first
                message = f"{self._endpoint}: {reason}"
                self._error(message)
                self.status.state = LinkState.DISCONNECTED
                self.status.disconnects += 1
                log.warning("%s: link lost: %s", self.spec.device_id, message)
                await self._close_link(link, delete_subscription=False)
                link = None
                self.status.polls += 1
                self.status.failed_polls += 1
                await self._emit(sink, self._all_bad(message, Cause.NETWORK))
                next_tick = time.monotonic() + interval
                if time.monotonic() - connected_at >= self.spec.reconnect_max_s:
                    # a link that held for a while earns a quick retry; one that drops
                    # right after connecting keeps backing off (no reconnect storm)
                    self._backoff.reset()
                first_delay = self._backoff.next_delay()
        except asyncio.CancelledError:
            cancelled = True
            raise
        finally:
            waker.cancel()
            if link is not None:
                # delete the subscription first so nothing new arrives, then let the
                # handler tasks already scheduled finish
                await self._close_link(link, delete_subscription=True)
                await self._drain(link)
            if not cancelled:
                # what the server delivered before stop is recorded, nothing after
                await self._flush(sink)
            self._pending.clear()
            self.status.state = LinkState.STOPPED

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()
