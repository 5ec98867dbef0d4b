"""The OPC UA driver's notification path without a network: sequence gaps, counters, dedupe.

These tests reach into the driver's private helpers on purpose: the behaviour under test
(republishing missed messages, never dropping silently) cannot be provoked reliably
through a real asyncua server.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

from asyncua import Client, ua
from asyncua.client.ua_session import UaSession
from asyncua.common.node import Node
from asyncua.common.subscription import SubscriptionItemData
from asyncua.ua.uaerrors import BadMessageNotAvailable

from gmp_edge.collector.opcua import OpcuaDeviceSpec, OpcuaDriver, OpcuaPoint
from gmp_edge.collector.opcua.link import Link as _Link
from gmp_edge.collector.opcua.monitoring import HANDLE_BASE as _HANDLE_BASE
from gmp_edge.collector.opcua.subscription import NotificationHandler as _Handler
from gmp_edge.collector.opcua.subscription import TrackedSubscription as _TrackedSubscription
from gmp_edge.collector.reading import Quality

SPEC = OpcuaDeviceSpec("press1", "opc.tcp://127.0.0.1:4840", timeout_s=0.5)
POINTS = [OpcuaPoint("press/a", "ns=2;s=A"), OpcuaPoint("press/b", "ns=2;s=B")]
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


class FakeSession(UaSession):
    """A UaSession that answers Republish from a dict and records what was asked."""

    def __init__(self, client: Client, available: dict[int, ua.NotificationMessage]) -> None:
        super().__init__(client.uaclient)
        self.available = available
        self.asked: list[int] = []

    async def republish(self, subscription_id: int, retransmit_sequence_number: int) -> Any:
        self.asked.append(retransmit_sequence_number)
        if retransmit_sequence_number not in self.available:
            raise BadMessageNotAvailable()
        return self.available[retransmit_sequence_number]


def message(seq: int, *items: tuple[int, float, int]) -> ua.NotificationMessage:
    """A notification message; items are (point index, value, status code)."""
    notifs = [
        ua.MonitoredItemNotification(
            ClientHandle=_HANDLE_BASE + i,
            Value=ua.DataValue(
                ua.Variant(v, ua.VariantType.Double),
                StatusCode=ua.StatusCode(ua.UInt32(code)),
                # a plain datetime, as asyncua decodes it; its ua.DateTime is an encoding marker
                SourceTimestamp=cast(
                    ua.DateTime, T0.replace(second=seq % 60, microsecond=int(v * 1000) % 10**6)
                ),
            ),
        )
        for i, v, code in items
    ]
    data: list[Any] = [ua.DataChangeNotification(MonitoredItems=notifs)] if notifs else []
    return ua.NotificationMessage(SequenceNumber=seq, NotificationData=data)


def make(
    available: dict[int, ua.NotificationMessage] | None = None,
) -> tuple[OpcuaDriver, _Link, _TrackedSubscription, FakeSession]:
    driver = OpcuaDriver(SPEC, POINTS)
    client = Client(SPEC.endpoint)
    link = _Link(client)
    session = FakeSession(client, available or {})
    sub = _TrackedSubscription(
        session, ua.CreateSubscriptionParameters(), _Handler(driver, link), driver, link
    )
    sub.subscription_id = 7
    for i, p in enumerate(POINTS):  # what create_monitored_items would have registered
        item = SubscriptionItemData()
        item.client_handle = _HANDLE_BASE + i
        item.node = Node(session, ua.NodeId.from_string(p.node_id))
        item.attribute = ua.AttributeIds.Value
        sub._monitored_items[_HANDLE_BASE + i] = item
    return driver, link, sub, session


async def deliver(sub: _TrackedSubscription, msg: ua.NotificationMessage) -> None:
    """Publish ``msg`` and wait for the handler tasks it started to finish.

    asyncua hands each notification to the handler in a task of its own: those are the
    tasks that did not exist before the publish, and awaiting them is the whole delivery.
    """
    before = asyncio.all_tasks()
    await sub.publish_callback(ua.PublishResult(SubscriptionId=7, NotificationMessage=msg))
    await asyncio.gather(*(asyncio.all_tasks() - before))


GOOD = ua.StatusCodes.Good


async def test_gap_is_republished_in_order_and_the_rest_counted_lost() -> None:
    driver, link, sub, session = make({2: message(2, (0, 2.0, GOOD))})
    await deliver(sub, message(1, (0, 1.0, GOOD)))
    await deliver(sub, message(4, (0, 4.0, GOOD), (1, 40.0, GOOD)))

    assert session.asked == [2, 3]
    values = [(r.tag, r.value) for r in driver._pending]
    assert values == [("press/a", 1.0), ("press/a", 2.0), ("press/a", 4.0), ("press/b", 40.0)]
    assert driver.status.extra["republished_messages"] == 1
    assert driver.status.extra["lost_messages"] == 1
    assert driver.status.extra["notifications"] == 4
    assert link.resync and "1 notification message(s) lost" in link.resync[0]
    assert link.received == link.handled == 4


async def test_keepalive_reveals_a_gap_but_a_normal_one_does_not() -> None:
    driver, link, sub, session = make()
    await deliver(sub, message(1, (0, 1.0, GOOD)))
    await deliver(sub, message(2))  # keep-alive announcing the next number: fine
    assert session.asked == [] and not link.resync
    await deliver(sub, message(4))  # keep-alive: 2 and 3 went missing
    assert session.asked == [2, 3]
    assert driver.status.extra["lost_messages"] == 2


async def test_overflow_bit_is_counted_and_marked_uncertain() -> None:
    driver, _, sub, _ = make()
    await deliver(sub, message(1, (0, 5.0, 0x480), (1, 6.0, GOOD)))
    a, b = driver._pending
    assert a.quality is Quality.UNCERTAIN and a.value == 5.0
    assert a.message and "overflow" in a.message
    assert b.quality is Quality.GOOD
    assert driver.status.extra["overflows"] == 1


async def test_unknown_handle_and_late_notifications_are_counted_not_silent() -> None:
    driver, link, sub, _ = make()
    bogus = SubscriptionItemData()
    bogus.client_handle = 5
    bogus.node = Node(sub.server, ua.NodeId(ua.Int32(1), ua.Int16(2)))
    sub._monitored_items[5] = bogus
    msg = message(1, (0, 1.0, GOOD))
    msg.NotificationData[0].MonitoredItems.append(
        ua.MonitoredItemNotification(ClientHandle=5, Value=ua.DataValue(ua.Variant(1.0)))
    )
    await deliver(sub, msg)
    assert driver.status.extra["unrouted_notifications"] == 1
    link.closed = True  # the loss was declared
    await deliver(sub, message(2, (0, 2.0, GOOD)))
    assert driver.status.extra["late_notifications"] == 1
    assert [r.value for r in driver._pending] == [1.0]


async def test_same_sample_from_read_and_notification_is_recorded_once() -> None:
    driver, _, sub, _ = make()
    await deliver(sub, message(1, (0, 1.0, GOOD)))
    first = driver._pending[0]
    driver._queue(first, dedupe=True)  # the initial read answering the same sample
    assert len(driver._pending) == 1
    assert driver.status.extra["duplicates_suppressed"] == 1
    driver._queue(first, dedupe=False)  # a poll or a resync always records its read
    assert len(driver._pending) == 2


async def test_bad_subscription_status_marks_the_link_lost() -> None:
    driver, link, _, _ = make()
    driver._on_status_change(
        link, ua.StatusChangeNotification(Status=ua.StatusCode(ua.UInt32(GOOD)))
    )
    assert link.lost is None
    driver._on_status_change(
        link,
        ua.StatusChangeNotification(Status=ua.StatusCode(ua.UInt32(ua.StatusCodes.BadShutdown))),
    )
    assert link.lost and "BadShutdown" in link.lost


async def test_a_late_initial_read_of_an_already_notified_sample_is_not_recorded_again() -> None:
    driver, _, sub, _ = make()
    await deliver(sub, message(1, (0, 1.0, GOOD)))
    await deliver(sub, message(2, (0, 2.0, GOOD)))  # a newer sample overtakes the read
    older = driver._pending[0]
    driver._queue(older, dedupe=True)
    assert [r.value for r in driver._pending] == [1.0, 2.0]
