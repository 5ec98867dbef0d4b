"""Non-blocking fan-out of notifications to sinks, with counters and a bounded drain."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from gmp_edge.clock import SYSTEM_CLOCK, Clock
from gmp_edge.notify.model import Notification
from gmp_edge.notify.sinks import Notifier

log = logging.getLogger("gmp_edge.notify")

#: Called with the notification, the sink name and the reason ("queue_full" or "closed").
DropCallback = Callable[[Notification, str, str], None]


@dataclass
class _Sink:
    notifier: Notifier
    name: str
    queue: asyncio.Queue[Notification]
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    filtered: int = 0
    last_error: str | None = None
    last_error_us: int | None = None
    last_sent_us: int | None = None
    in_flight: Notification | None = None


@dataclass(frozen=True)
class DrainReport:
    """What ``Dispatcher.run`` left behind when it stopped."""

    timed_out: bool
    undelivered: tuple[tuple[str, Notification], ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (sink name and notification key per undelivered item)."""
        return {
            "timed_out": self.timed_out,
            "undelivered": [{"sink": s, "key": n.key} for s, n in self.undelivered],
        }


class Dispatcher:
    """Delivers notifications to every sink independently, without blocking the submitter.

    Each sink has its own bounded queue (``queue_size``) and worker task, so a slow or dead
    sink (a webhook in its retry backoff) neither delays nor crowds out the others. When a
    sink's queue is full the notification is *not* silently lost: it is counted in that
    sink's ``dropped`` and in :attr:`dropped`, logged at ERROR, and ``on_drop`` is called so
    the service can audit it or raise an alarm.

    ``submit`` must be called from the event loop's thread (asyncio queues are not
    thread-safe). Notifications submitted before :meth:`run` starts wait in the queues.
    """

    def __init__(
        self,
        notifiers: Iterable[Notifier],
        queue_size: int = 1000,
        *,
        on_drop: DropCallback | None = None,
        drain_timeout_s: float = 5.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        self.queue_size = queue_size
        self.on_drop = on_drop
        self.drain_timeout_s = drain_timeout_s
        self._clock = clock
        self._closed = False
        self._last_drain: DrainReport | None = None
        self._sinks: list[_Sink] = []
        seen: dict[str, int] = {}
        for notifier in notifiers:
            # Names key the health counters; keep them unique (two webhooks to one host).
            base = notifier.name
            seen[base] = seen.get(base, 0) + 1
            name = base if seen[base] == 1 else f"{base}#{seen[base]}"
            self._sinks.append(_Sink(notifier, name, asyncio.Queue(maxsize=queue_size)))

    @property
    def dropped(self) -> int:
        """Total (notification, sink) deliveries dropped because a queue was full or closed."""
        return sum(s.dropped for s in self._sinks)

    @property
    def sink_names(self) -> list[str]:
        """Names of the sinks, in configuration order."""
        return [s.name for s in self._sinks]

    def submit(self, n: Notification) -> None:
        """Queue ``n`` for every sink that accepts it; never blocks, never raises on overflow."""
        for sink in self._sinks:
            accepts = getattr(sink.notifier, "accepts", None)
            if accepts is not None and not accepts(n):
                sink.filtered += 1
                continue
            if self._closed:
                self._drop(sink, n, "closed")
                continue
            try:
                sink.queue.put_nowait(n)
            except asyncio.QueueFull:
                self._drop(sink, n, "queue_full")

    def _drop(self, sink: _Sink, n: Notification, reason: str) -> None:
        sink.dropped += 1
        log.error(
            "notification %s (%s, %s) NOT delivered to %s: %s (dropped so far: %d)",
            n.key,
            n.kind,
            n.priority,
            sink.name,
            reason,
            sink.dropped,
        )
        if self.on_drop is not None:
            try:
                self.on_drop(n, sink.name, reason)
            except Exception:
                # The submitter is the alarm engine: a faulty callback must not break it.
                log.exception("on_drop callback failed for %s", n.key)

    async def _worker(self, sink: _Sink) -> None:
        while True:
            n = await sink.queue.get()
            sink.in_flight = n
            try:
                await sink.notifier.send(n)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                sink.failed += 1
                sink.last_error = f"{type(exc).__name__}: {exc}"
                sink.last_error_us = self._clock.now_us()
                log.error("notification %s failed on %s: %s", n.key, sink.name, sink.last_error)
            else:
                sink.sent += 1
                sink.last_sent_us = self._clock.now_us()
            finally:
                sink.in_flight = None
                sink.queue.task_done()

    async def run(self, stop: asyncio.Event) -> DrainReport:
        """Deliver until ``stop`` is set, then drain for at most ``drain_timeout_s``.

        Returns (and logs at ERROR, one line per item) what could not be delivered in time.
        Sinks with an ``aclose`` coroutine are closed at the end.
        """
        tasks = [asyncio.create_task(self._worker(s), name=f"notify:{s.name}") for s in self._sinks]
        try:
            await stop.wait()
        finally:
            # From here on, submit() counts new notifications as dropped ("closed").
            self._closed = True
            timed_out = False
            try:
                async with asyncio.timeout(self.drain_timeout_s):
                    await asyncio.gather(*(s.queue.join() for s in self._sinks))
            except TimeoutError:
                timed_out = True
            left: list[tuple[str, Notification]] = []
            for s in self._sinks:
                if s.in_flight is not None:
                    left.append((s.name, s.in_flight))
                while not s.queue.empty():
                    left.append((s.name, s.queue.get_nowait()))
                    s.queue.task_done()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for name, n in left:
                log.error("notification %s (%s) undelivered to %s at stop", n.key, n.kind, name)
            for s in self._sinks:
                close = getattr(s.notifier, "aclose", None)
                if close is not None:
                    with contextlib.suppress(Exception):
                        await close()
            report = DrainReport(timed_out=timed_out, undelivered=tuple(left))
            self._last_drain = report
        return report

    def status(self) -> dict[str, Any]:
        """Counters for the health API."""
        return {
            "queue_size": self.queue_size,
            "closed": self._closed,
            "dropped": self.dropped,
            "last_drain": None if self._last_drain is None else self._last_drain.as_dict(),
            "sinks": {
                s.name: {
                    "sent": s.sent,
                    "failed": s.failed,
                    "dropped": s.dropped,
                    "filtered": s.filtered,
                    "queued": s.queue.qsize() + (1 if s.in_flight is not None else 0),
                    "last_error": s.last_error,
                    "last_error_us": s.last_error_us,
                    "last_sent_us": s.last_sent_us,
                }
                for s in self._sinks
            },
        }
