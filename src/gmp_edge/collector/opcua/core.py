"""The driver's state and its outbox: readings queued for the sink, counters, callbacks.

Everything here runs without awaiting the network: parsing the points once, counting
into ``status.extra``, de-duplicating and flushing queued readings, and turning the
subscription's callbacks into queued readings or a lost link.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from asyncua import ua
from asyncua.common.subscription import DataChangeNotif

from gmp_edge.clock import now_us
from gmp_edge.collector.driver import DeviceStatus, Driver, Sink
from gmp_edge.collector.opcua.convert import datavalue_to_reading, has_overflow, status_text
from gmp_edge.collector.opcua.errors import strip_credentials
from gmp_edge.collector.opcua.link import Link
from gmp_edge.collector.opcua.monitoring import point_index
from gmp_edge.collector.opcua.spec import OpcuaDeviceSpec, OpcuaPoint
from gmp_edge.collector.reading import Cause, Quality, Reading
from gmp_edge.config.nodeid import InvalidNodeId, NodeRef, parse_node_id

log = logging.getLogger("gmp_edge.collector.opcua")

_RECENT = 8  # samples per tag remembered to recognise one delivered twice


_ID_TYPES = {
    "i": ua.NodeIdType.Numeric,
    "s": ua.NodeIdType.String,
    "g": ua.NodeIdType.Guid,
    "b": ua.NodeIdType.ByteString,
}


def ua_node_id(ref: NodeRef) -> ua.NodeId:
    """The asyncua node id of a parsed node whose namespace index is known."""
    assert ref.namespace_index is not None, "a namespace URI is resolved first"
    # asyncua types the fields by their OPC UA built-in types (Int16, String, ...), which are
    # the Python values themselves at run time
    identifier: Any = ref.identifier
    namespace: Any = ref.namespace_index
    return ua.NodeId(identifier, namespace, _ID_TYPES[ref.id_type])


class OpcuaDriverCore(Driver):
    """One OPC UA device's points, status and queued readings; no network of its own."""

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
        # Node ids are parsed once; a malformed one is a configuration error that must
        # not take the other tags down, so it becomes a Bad reading for its own tag. One
        # named by namespace URI (nsu=) is resolved against the server's namespace array at
        # every connect (indexes may change when the server restarts); until then, and when
        # the server does not know the URI, only its own tag is Bad.
        self._refs: list[NodeRef | None] = []
        self._node_ids: list[ua.NodeId | None] = []
        self._malformed: dict[int, str] = {}
        for i, p in enumerate(self.points):
            try:
                ref: NodeRef | None = parse_node_id(p.node_id)
            except InvalidNodeId as exc:
                ref = None
                self._malformed[i] = f"invalid node id: {exc}"
                log.error("%s: tag %s: %s", spec.device_id, p.tag, self._malformed[i])
            self._refs.append(ref)
            self._node_ids.append(
                None if ref is None or ref.namespace_index is None else ua_node_id(ref)
            )
        self._invalid: dict[int, str] = dict(self._malformed)
        for i, ref in enumerate(self._refs):
            if ref is not None and ref.namespace_uri is not None:
                self._invalid[i] = f"namespace {ref.namespace_uri!r} not resolved yet"
        self._valid = [i for i in range(len(self.points)) if i not in self._invalid]
        self._pending: list[Reading] = []
        self._recent: dict[str, deque[tuple[object, ...]]] = {}
        self._wake = asyncio.Event()
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

    def resolve_namespaces(self, namespace_array: Sequence[str]) -> None:
        """Give every ``nsu=`` node its index in the server's ``namespace_array`` (read at
        connect); a URI the server does not know makes its own tag Bad, saying so."""
        self._invalid = dict(self._malformed)
        for i, ref in enumerate(self._refs):
            if ref is None or ref.namespace_uri is None:
                continue
            try:
                index = list(namespace_array).index(ref.namespace_uri)
            except ValueError:
                self._node_ids[i] = None
                self._invalid[i] = (
                    f"node {self.points[i].node_id!r}: the server has no namespace "
                    f"{ref.namespace_uri!r} (its namespaces: {', '.join(namespace_array)})"
                )
                log.error(
                    "%s: tag %s: %s", self.spec.device_id, self.points[i].tag, self._invalid[i]
                )
                continue
            self._node_ids[i] = ua_node_id(NodeRef(ref.id_type, ref.identifier, index))
        self._valid = [i for i in range(len(self.points)) if i not in self._invalid]

    @property
    def needs_namespace_array(self) -> bool:
        """True when some node is named by namespace URI."""
        return any(r is not None and r.namespace_uri is not None for r in self._refs)

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

    def _on_datachange(self, link: Link, data: DataChangeNotif) -> None:
        link.handled += 1
        if link.closed:
            # Only reachable if asyncua dispatches after the loss was drained; counted
            # and logged, because emitting it after the loss' Bad readings would close
            # the gap with a value older than the gap.
            self._bump("late_notifications")
            log.warning("%s: notification after link close discarded", self.spec.device_id)
            return
        item = data.monitored_item
        index = point_index(item.ClientHandle)
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

    def _on_status_change(self, link: Link, status: ua.StatusChangeNotification) -> None:
        code = int(status.Status.value) if status.Status is not None else 0
        if link.closed or (code >> 30) < 2:  # Good/Uncertain status changes are news, not loss
            return
        link.lost = link.lost or f"subscription status {status_text(code)}"
        self._wake.set()
