"""Opening, using and closing one link: every request the driver makes to the server.

Connect (with security), learn the operation limits, subscribe and create monitored
items, read nodes, probe liveness, tear down. Every call runs under the device timeout;
a failure of the link itself surfaces as :class:`~collector.opcua.errors.LinkError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from enum import IntEnum
from typing import Any

from asyncua import ua
from asyncua.client.ua_client import UaClientState
from asyncua.ua.uaerrors import UaStatusCodeError

from gmp_edge.clock import now_us
from gmp_edge.collector.opcua.client import apply_security, new_client
from gmp_edge.collector.opcua.convert import datavalue_to_reading, status_text
from gmp_edge.collector.opcua.core import OpcuaDriverCore
from gmp_edge.collector.opcua.errors import LinkError, describe_error, timed
from gmp_edge.collector.opcua.limits import OPERATION_LIMIT_NODES, operation_limits, smaller_chunk
from gmp_edge.collector.opcua.link import Link
from gmp_edge.collector.opcua.monitoring import (
    FILTER_REJECTED,
    item_request,
    subscription_parameters,
)
from gmp_edge.collector.opcua.spec import OpcuaDeviceSpec, OpcuaPoint
from gmp_edge.collector.opcua.subscription import NotificationHandler, TrackedSubscription
from gmp_edge.collector.reading import Cause, Reading

log = logging.getLogger("gmp_edge.collector.opcua")

_SERVER_STATE = ua.NodeId(ua.Int32(ua.ObjectIds.Server_ServerStatus_State))


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


class OpcuaConnection(OpcuaDriverCore):
    """The driver's requests to its server, each over an explicit :class:`Link`."""

    def __init__(self, spec: OpcuaDeviceSpec, points: Sequence[OpcuaPoint]) -> None:
        super().__init__(spec, points)
        # Set when the server refuses subscriptions: from then on this driver polls.
        self._fallback: str | None = None
        # True while a connect attempt holds a session (its notifications may be queued).
        self._attempt_connected = False

    @property
    def _subscribing(self) -> bool:
        """Subscription mode, unless the server refused subscriptions (polling fallback)."""
        return self.spec.mode == "subscription" and self._fallback is None

    async def _timed(self, aw: Any, what: str, budget: float | None = None) -> Any:
        """Await a network call under the device timeout; link-level failures → LinkError."""
        return await timed(aw, what, budget or self.spec.timeout_s)

    # -- connecting ----------------------------------------------------------------------

    async def _open_link(self) -> Link:
        """Connect, learn limits and (subscription mode) subscribe and read every node.

        The initial readings are queued the moment the read answers, so that a
        notification of the same sample, before or after, is recognised as such.
        """
        spec = self.spec
        client = new_client(spec)
        link = Link(client)

        async def lost(exc: Exception) -> None:
            link.lost = link.lost or f"connection lost ({describe_error(exc)})"
            self._wake.set()

        client.connection_lost_callback = lost
        self._attempt_connected = False
        try:
            await apply_security(client, spec)
            # connect = socket, hello, channel, session, activate: several round trips
            await self._timed(client.connect(), "connect", spec.timeout_s * 4)
            self._attempt_connected = True
            if self.needs_namespace_array:
                namespaces = await self._timed(client.get_namespace_array(), "read namespaces")
                self.resolve_namespaces([str(u) for u in namespaces])
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
                    raise LinkError(f"{self._fallback}; reconnecting to poll") from None
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

    async def _read_limits(self, link: Link) -> None:
        ids = list(OPERATION_LIMIT_NODES)
        try:
            dvs = await self._timed(
                link.client.uaclient.read_attributes(ids, ua.AttributeIds.Value), "read limits"
            )
        except UaStatusCodeError as exc:  # a server without the nodes: no limits known
            log.info("%s: no operation limits (%s)", self.spec.device_id, describe_error(exc))
            dvs = []
        link.max_read, link.max_items = operation_limits(dvs)
        self.status.extra["max_nodes_per_read"] = link.max_read
        self.status.extra["max_monitored_items_per_call"] = link.max_items

    async def _subscribe(self, link: Link) -> list[Reading]:
        """Create the subscription and its monitored items; Bad readings for failed items."""
        spec = self.spec
        sub = TrackedSubscription(
            link.client.uaclient.session,
            subscription_parameters(spec),
            NotificationHandler(self, link),
            self,
            link,
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

    # -- requests over a link ------------------------------------------------------------

    def _nid(self, index: int) -> ua.NodeId:
        node_id = self._node_ids[index]
        assert node_id is not None, "only valid points are read or monitored"
        return node_id

    async def _create_items(self, link: Link, indices: Sequence[int]) -> dict[int, int]:
        """Create monitored items in chunks of MaxMonitoredItemsPerCall; failures by index."""
        sub = link.subscription
        assert sub is not None
        failures: dict[int, int] = {}
        todo = list(indices)
        while todo:
            size = link.max_items or len(todo)
            chunk, rest = todo[:size], todo[size:]
            requests = [item_request(self._nid(i), i, self.spec, link.use_filter) for i in chunk]
            try:
                results = await self._timed(
                    sub.create_monitored_items(requests), "CreateMonitoredItems"
                )
            except UaStatusCodeError as exc:
                code = int(exc.code)
                smaller = smaller_chunk(code, size)
                if smaller is not None:
                    link.max_items = smaller  # the server's real limit is lower
                    continue
                failures.update(dict.fromkeys(chunk, code))
                todo = rest
                continue
            retry: list[int] = []
            for i, res in zip(chunk, results, strict=False):
                if isinstance(res, ua.StatusCode):
                    if link.use_filter and res.value in FILTER_REJECTED:
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

    async def _read(self, link: Link, indices: Sequence[int]) -> list[Reading]:
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
                smaller = smaller_chunk(code, size)
                if smaller is not None:
                    link.max_read = smaller
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

    async def _probe(self, link: Link) -> str | None:
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
        except LinkError as exc:
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

    # -- closing -------------------------------------------------------------------------

    async def _close_link(self, link: Link, delete_subscription: bool) -> None:
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
