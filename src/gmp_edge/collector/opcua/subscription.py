"""The subscription's publish path: sequence checks, republish, and the handler.

asyncua's publish loop acknowledges what it receives and never asks for what it missed.
Here every publish response is checked against the last sequence number first; a gap is
fetched back from the server's retransmission queue when possible and otherwise
recorded, so no lost notification goes unnoticed. Notifications then reach the driver
through asyncua's handler path (one task per notification, unbounded) rather than its
iterator queue, whose default overflow policy drops the oldest events silently.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from asyncua import ua
from asyncua.client.ua_session import UaSession
from asyncua.common.subscription import DataChangeNotif, Subscription
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from gmp_edge.clock import now_us
from gmp_edge.collector.opcua.errors import LINK_CODES
from gmp_edge.collector.opcua.sequence import next_sequence_number, sequence_gap

if TYPE_CHECKING:
    from gmp_edge.collector.opcua.core import OpcuaDriverCore
    from gmp_edge.collector.opcua.link import Link

log = logging.getLogger("gmp_edge.collector.opcua")

_MAX_REPUBLISH = 100  # bound on messages fetched back after one sequence gap


def _data_items(data: list[Any]) -> int:
    """How many monitored-item notifications a message's NotificationData carries."""
    return sum(len(n.MonitoredItems) for n in data if isinstance(n, ua.DataChangeNotification))


class TrackedSubscription(Subscription):
    """A Subscription that checks publish sequence numbers before dispatching."""

    def __init__(
        self,
        session: Any,
        params: ua.CreateSubscriptionParameters,
        handler: NotificationHandler,
        driver: OpcuaDriverCore,
        link: Link,
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
            link.received += _data_items(data)
        await super().publish_callback(publish_result)

    async def _recover(self, first: int, count: int) -> None:
        """Republish ``count`` messages from ``first``; record the ones the server lost."""
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
                if int(exc.code) in LINK_CODES:
                    break  # the link itself is failing: the loss path takes over
                continue  # BadMessageNotAvailable: this one is gone, try the next
            except (UaError, TimeoutError, OSError):
                break
            if not msg.NotificationData:
                continue
            recovered += 1
            link.received += _data_items(msg.NotificationData)
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


class NotificationHandler:
    """asyncua subscription handler bound to one link (plain methods: no await needed)."""

    def __init__(self, driver: OpcuaDriverCore, link: Link) -> None:
        self._driver = driver
        self._link = link

    def datachange_notification(self, node: Any, val: Any, data: DataChangeNotif) -> None:
        """A monitored item changed: convert and queue it."""
        self._driver._on_datachange(self._link, data)

    def status_change_notification(self, status: ua.StatusChangeNotification) -> None:
        """The subscription's status changed (BadShutdown on loss, BadTimeout on expiry)."""
        self._driver._on_status_change(self._link, status)
