"""The one small driver interface every protocol implements, and the sink it feeds."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from gmp_edge.collector.reading import Cause, Reading


class Sink(Protocol):
    """Where drivers hand their readings; the service commits them to the store."""

    async def put(self, readings: Sequence[Reading]) -> None:
        """Accept a batch; may wait (backpressure) but never drops."""
        ...

    async def gap(
        self, tags: Sequence[str], start_us: int, end_us: int, cause: Cause, message: str
    ) -> None:
        """Record a closed period without readings that no reading can show (missed polls)."""
        ...

    async def sample_interval(self, tags: Sequence[str], from_us: int, interval_s: float) -> None:
        """From ``from_us`` the device delivers ``tags`` every ``interval_s`` (its own sample
        cycle, e.g. a particle counter's hold + sample time): what the review expects."""
        ...


class LinkState(StrEnum):
    """Connection state of a device as the collector sees it."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    STOPPED = "stopped"


@dataclass
class DeviceStatus:
    """Live health of one device, shown by the API."""

    device_id: str
    protocol: str
    endpoint: str
    state: LinkState = LinkState.CONNECTING
    last_error: str | None = None
    last_error_us: int | None = None
    last_good_us: int | None = None
    connects: int = 0
    disconnects: int = 0
    polls: int = 0
    failed_polls: int = 0
    missed_polls: int = 0
    readings: int = 0
    backfilled: int = 0
    last_poll_ms: float | None = None
    extra: dict[str, object] = field(default_factory=dict)


class Driver(ABC):
    """A device's collector: owns its connection and schedule, feeds a sink.

    Contract: ``run`` returns only after ``stop`` is set (or it is cancelled);
    every poll yields one reading per tag (Bad with a message when the read
    failed); no exception from the device escapes ``run``; after ``run``
    returns nothing more is put into the sink.
    """

    status: DeviceStatus

    @property
    @abstractmethod
    def tags(self) -> list[str]:
        """The tag paths this driver produces."""

    @abstractmethod
    async def run(self, sink: Sink, stop: asyncio.Event) -> None:
        """Collect until ``stop`` is set."""


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``; True if ``stop`` was set meanwhile."""
    if seconds <= 0:
        return stop.is_set()
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True
