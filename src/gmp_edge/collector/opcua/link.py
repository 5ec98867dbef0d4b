"""The state of one connection: its client, subscription and what it learnt on the way."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from asyncua import Client

from gmp_edge.clock import now_us

if TYPE_CHECKING:
    from gmp_edge.collector.opcua.subscription import TrackedSubscription


class Link:
    """One connected client, its subscription and what it learnt about the server."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.subscription: TrackedSubscription | None = None
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
