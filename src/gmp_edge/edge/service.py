"""The running edge service: drivers feed a sink, a committer writes the store every interval.

Readings wait in memory at most one commit interval. If the store refuses (full
disk) the batch stays in memory and is retried; when the buffer is full the
drivers wait (backpressure) instead of anything being dropped, and the missed
polls become gaps with their cause.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gmp_edge.clock import now_us
from gmp_edge.collector.driver import DeviceStatus, Driver
from gmp_edge.collector.reading import Cause, Quality, Reading
from gmp_edge.config import PlantConfig
from gmp_edge.edge.integrity_watch import IntegrityStatus
from gmp_edge.edge.wiring import build_drivers
from gmp_edge.historian.gaps import GapEvent, GapTracker
from gmp_edge.historian.segments import minute_of
from gmp_edge.historian.store import Store, StoreError
from gmp_edge.periodic import Periodic
from gmp_edge.services.health import BadTag
from gmp_edge.supervise import Supervisor, TaskFailure

log = logging.getLogger("gmp_edge.service")


@dataclass
class StoreHealth:
    """How the committer is doing."""

    committed: int = 0
    commits: int = 0
    pending: int = 0
    last_commit_us: int | None = None
    last_commit_ms: float | None = None
    error: str | None = None
    failed_commits: int = 0
    backpressure_waits: int = 0


class EdgeService:
    """Collectors -> local store, with the live view the API shows."""

    def __init__(
        self,
        cfg: PlantConfig,
        config_sha256: str,
        store: Store,
        max_pending: int = 500_000,
    ):
        self.cfg = cfg
        self.config_sha256 = config_sha256
        self.store = store
        self.max_pending = max_pending
        self.health = StoreHealth()
        self.latest: dict[str, Reading] = {}
        self.started_us: int | None = None
        self._pending: list[Reading] = []
        self._pending_events: list[GapEvent] = []
        self._pending_gaps: list[tuple[str, int, int, Cause, str]] = []
        self._pending_intervals: list[tuple[str, int, float]] = []
        # tag -> (first Bad reading's edge time, Bad readings in a row, newest message)
        self._bad: dict[str, tuple[int, int, str | None]] = {}
        self.task_failures: list[TaskFailure] = []
        self.integrity = IntegrityStatus()  # kept current by the integrity watch (serve)
        self.on_task_failure: list[Callable[[TaskFailure], None]] = []
        self._room = asyncio.Event()
        self._room.set()
        self._tracker = GapTracker()
        # called after every successful commit (the monitoring engine wakes up on it)
        self.commit_listeners: list[Callable[[], None]] = []
        # status of each destination the store forwards to (set when forwarders are wired)
        self.forwarders: dict[str, Callable[[], dict[str, object]]] = {}
        store.register_tags((t.path, t.unit, t.kind.value, t.device) for t in cfg.tags)
        self.drivers: list[Driver] = build_drivers(cfg, self._last_records())

    def _last_records(self) -> dict[str, int | None]:
        out: dict[str, int | None] = {}
        for d in self.cfg.devices:
            newest: int | None = None
            for t in self.cfg.tags:
                if t.device == d.id and t.record is not None:
                    r = self.store.latest(t.path)
                    if r is not None and r.ts_source_us is not None:
                        s = r.ts_source_us // 1_000_000
                        newest = s if newest is None else max(newest, s)
            out[d.id] = newest
        return out

    # -- the sink drivers write to ----------------------------------------------------

    async def put(self, readings: Sequence[Reading]) -> None:
        """Accept a batch from a driver; waits while the buffer is full."""
        if len(self._pending) >= self.max_pending:
            self.health.backpressure_waits += 1
            self._room.clear()
            await self._room.wait()
        self._pending.extend(readings)
        bad = self._bad
        for r in readings:
            prev = self.latest.get(r.tag)
            if prev is None or r.ts_us >= prev.ts_us:
                self.latest[r.tag] = r
                if r.quality is Quality.BAD:
                    since, polls, _ = bad.get(r.tag, (r.ts_edge_us, 0, None))
                    bad[r.tag] = (since, polls + 1, r.message)
                elif r.tag in bad:
                    del bad[r.tag]

    async def gap(
        self, tags: Sequence[str], start_us: int, end_us: int, cause: Cause, message: str
    ) -> None:
        """A closed gap reported by a driver (missed polls, overwritten device records)."""
        self._pending_gaps.extend((t, start_us, end_us, cause, message) for t in tags)

    async def sample_interval(self, tags: Sequence[str], from_us: int, interval_s: float) -> None:
        """A device's own sample interval (e.g. a counter's cycle), for the review."""
        self._pending_intervals.extend((t, from_us, interval_s) for t in tags)

    # -- committing ------------------------------------------------------------------

    @property
    def uncommitted(self) -> int:
        """Readings and gaps collected but not (yet) in the store."""
        return (
            len(self._pending)
            + len(self._pending_gaps)
            + len(self._pending_events)
            + len(self._pending_intervals)
        )

    def _commit(
        self,
        batch: list[Reading],
        events: list[GapEvent],
        gaps: list[tuple[str, int, int, Cause, str]],
        intervals: list[tuple[str, int, float]],
    ) -> None:
        # one transaction
        self.store.commit(batch, events, closed_gaps=gaps, sample_intervals=intervals)

    async def commit_pending(self) -> None:
        """Write everything pending in one transaction; on failure keep it for the next try."""
        batch, self._pending = self._pending, []
        gaps, self._pending_gaps = self._pending_gaps, []
        intervals, self._pending_intervals = self._pending_intervals, []
        events = self._pending_events + self._tracker.observe(batch)
        self._pending_events = []
        if not batch and not events and not gaps and not intervals:
            return
        t0 = time.perf_counter()
        try:
            await asyncio.to_thread(self._commit, batch, events, gaps, intervals)
        except Exception as exc:  # kept whatever the cause: a commit never loses a batch
            if not isinstance(exc, StoreError):
                log.exception("store commit raised unexpectedly")
            self._pending[:0] = batch
            self._pending_events = events
            self._pending_gaps[:0] = gaps
            self._pending_intervals[:0] = intervals
            self.health.failed_commits += 1
            if self.health.error is None:
                log.error("store commit failed, keeping %d readings in memory: %s", len(batch), exc)
            self.health.error = str(exc)
            return
        finally:
            self.health.pending = len(self._pending)
            if len(self._pending) < self.max_pending:
                self._room.set()
        if self.health.error is not None:
            log.warning("store commits work again: %s", self.health.error)
        self.health.error = None
        self.health.commits += 1
        self.health.committed += len(batch)
        self.health.last_commit_us = now_us()
        self.health.last_commit_ms = (time.perf_counter() - t0) * 1000
        for listener in self.commit_listeners:
            listener()

    async def _committer(self, stop: asyncio.Event) -> None:
        # every interval, and once more when stop ends the wait: what is pending goes in
        await Periodic(
            self.commit_pending,
            self.cfg.store.commit_interval_s,
            name="committer",
            first_at_start=False,
            last_on_stop=True,
        ).run(stop)

    async def _retention(self, stop: asyncio.Event) -> None:
        days = self.cfg.store.retention_days
        if days is None:
            return

        async def prune() -> None:
            cutoff = now_us() - days * 86_400 * 1_000_000
            n = await asyncio.to_thread(self.store.apply_retention, cutoff)
            if n:
                log.info("retention: deleted %d readings older than %d days", n, days)

        await Periodic(prune, 3600, name="retention").run(stop)

    #: True: the indexer also folds the running minute (its segment is then rewritten every
    #: pass, ADR 0028), for a test that needs every reading folded without waiting for the
    #: next minute of the wall clock.
    fold_running_minute = False

    async def _segments(self, stop: asyncio.Event) -> None:
        """Keep the review segments up with the readings (ADR 0018)."""
        # a pass of a minute of every tag at 1 s writes each segment once or twice a minute;
        # fixed 50,000-row passes at 10,000 tags wrote each one six times per interval and
        # folded at half the rate (218k vs 466k readings/s measured). ~40 MB at 20,000 tags.
        rows = max(50_000, 60 * len(self.cfg.tags))

        async def index() -> None:
            # closed minutes only: each segment is written once, when its minute is over
            closed_before = None if self.fold_running_minute else int(minute_of(now_us()))
            try:
                while (
                    await asyncio.to_thread(self.store.index_segments, rows, closed_before)
                    and not stop.is_set()
                ):
                    await asyncio.sleep(0)  # catching up: let commits in between passes
            except StoreError as exc:
                # derived data: a failed pass loses nothing, the review reads the raw tail
                log.error("segment index pass failed (reviews read raw readings): %s", exc)

        await Periodic(index, self.cfg.store.segment_index_interval_s, name="segments").run(stop)

    # -- lifecycle ---------------------------------------------------------------------

    def task_failed(self, failure: TaskFailure) -> None:
        """A supervised task died: kept for health, handed to ``on_task_failure``."""
        self.task_failures.append(failure)
        for callback in self.on_task_failure:
            callback(failure)

    def bad_tags(self, at_us: int) -> list[BadTag]:
        """Tags whose newest readings are Bad: since when, how many polls, the message."""
        return [
            BadTag(tag, max(0.0, (at_us - since) / 1e6), polls, message)
            for tag, (since, polls, message) in self._bad.items()
        ]

    def device_statuses(self) -> list[DeviceStatus]:
        """Live status of every device."""
        return [d.status for d in self.drivers]

    async def run(self, stop: asyncio.Event) -> None:
        """Collect and commit until ``stop`` is set; the store records start and stop."""
        report = await asyncio.to_thread(
            self.store.start_run, self.config_sha256, [t.path for t in self.cfg.tags]
        )
        self.started_us = now_us()
        if report.previous_heartbeat_us is not None:
            down_s = (self.started_us - report.previous_heartbeat_us) / 1e6
            log.info(
                "previous run's last heartbeat %.1f s ago: recorded %d service-down gap(s)",
                down_s,
                report.downtime_gaps,
            )
        # a driver or the committer that dies is never silent: health fails, it is logged
        # and (through on_task_failure) audited
        driver_stop = asyncio.Event()
        drivers = Supervisor(driver_stop)
        drivers.on_failure.append(self.task_failed)
        for d in self.drivers:
            drivers.start(f"driver:{d.status.device_id}", d.run(self, driver_stop))
        committer_stop = asyncio.Event()
        jobs = Supervisor(committer_stop)
        jobs.on_failure.append(self.task_failed)
        jobs.start("committer", self._committer(committer_stop))
        jobs.start("retention", self._retention(committer_stop), ends_early=True)
        jobs.start("segments", self._segments(committer_stop))
        try:
            await stop.wait()
        finally:
            driver_stop.set()
            await drivers.wait(timeout_s=10)
            committer_stop.set()
            await jobs.wait()
            await self.commit_pending()
            if self._pending:
                log.error("%d readings could not be committed at stop", len(self._pending))
            await asyncio.to_thread(self.store.stop_run)
