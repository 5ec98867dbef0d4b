"""The OPC UA driver's schedule: connect, serve, lose the link, reconnect, stop.

One asyncua client per device, every network call under a timeout, reconnects with
capped exponential backoff. The driver owns reconnection itself (asyncua's
``auto_reconnect`` stays off) so that every loss is visible: one Bad reading per tag
when the link drops, one more per tag every ``poll_interval_s`` while it stays down,
and a fresh read of every node once the subscription is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from gmp_edge.clock import now_us
from gmp_edge.collector.driver import LinkState, Sink, sleep_or_stop
from gmp_edge.collector.opcua.connection import OpcuaConnection
from gmp_edge.collector.opcua.errors import LinkError, describe_error
from gmp_edge.collector.opcua.link import Link
from gmp_edge.collector.opcua.spec import OpcuaDeviceSpec, OpcuaPoint
from gmp_edge.collector.reading import Cause, Quality, Reading
from gmp_edge.retry import Backoff

log = logging.getLogger("gmp_edge.collector.opcua")


class OpcuaDriver(OpcuaConnection):
    """Collects one OPC UA server's variables by subscription or polling."""

    def __init__(self, spec: OpcuaDeviceSpec, points: Sequence[OpcuaPoint]) -> None:
        super().__init__(spec, points)
        self._backoff = Backoff(spec.reconnect_min_s, spec.reconnect_max_s, jitter=0.1)

    # -- while connected -----------------------------------------------------------------

    async def _drain(self, link: Link) -> None:
        """Let asyncua's already-scheduled handler tasks run before declaring a loss."""
        for _ in range(10):
            if link.handled >= link.received:
                break
            await asyncio.sleep(0)
        link.closed = True

    async def _serve_subscription(self, link: Link, sink: Sink, stop: asyncio.Event) -> str | None:
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

    async def _resync(self, link: Link, sink: Sink) -> str | None:
        """After lost notifications: record the gap and read every node again."""
        reasons, link.resync = link.resync, []
        start = link.last_publish_us
        try:
            readings = await self._read(
                link, [i for i in self._valid if i not in link.failed_items]
            )
        except LinkError as exc:
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

    async def _retry_items(self, link: Link) -> str | None:
        """Try again to monitor nodes the server refused (they may exist by now)."""
        try:
            failures = await self._create_items(link, sorted(link.failed_items))
        except LinkError as exc:
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

    async def _serve_polling(self, link: Link, sink: Sink, stop: asyncio.Event) -> str | None:
        """Read every node every poll interval until stop (None) or a link failure."""
        interval = self.spec.poll_interval_s
        due = time.monotonic()
        while True:
            if stop.is_set():
                return None
            t0 = time.perf_counter()
            try:
                readings = await self._read(link, self._valid)
            except LinkError as exc:
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
    ) -> Link | None:
        """Try to connect with backoff, emitting Bad readings every poll interval meanwhile.

        ``next_tick`` None means nothing was emitted yet: the first failure emits at once.
        Returns the new link (its initial readings queued), or None when ``stop`` was set.
        """
        interval = self.spec.poll_interval_s
        next_attempt = time.monotonic() + first_delay
        attempt: asyncio.Task[Link] | None = None
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
                    why = str(exc) if isinstance(exc, LinkError) else describe_error(exc)
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
        link: Link | None = None
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
                except LinkError as exc:
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
