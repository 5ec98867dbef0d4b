"""The monitoring engine: committed readings -> limit evaluation -> alarms and deviations.

It reads the store in commit order after its own cursor (so nothing committed is ever
skipped, and a restart carries on where it stopped), feeds each room's evaluator,
turns condition changes into ISA-18.2 alarm transitions, raises deviations for
action-limit excursions and monitoring loss, runs alarm timers, and saves its whole
state (cursor, evaluator timers, production state, open excursions) after every step.
The decisions are the pure cores' (``limits``, ``alarms``, ``deviations``); this shell
only moves data between them, the store and the books.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from gmp_edge.alarms import machine as am
from gmp_edge.alarms.model import (
    Alarm,
    AlarmPolicy,
    AlarmState,
    ConditionKind,
    Priority,
    Transition,
)
from gmp_edge.alarms.timers import tick
from gmp_edge.audit.trail import AuditTrail
from gmp_edge.clock import now_us
from gmp_edge.collector.reading import Quality
from gmp_edge.config import LimitEntry, PlantConfig
from gmp_edge.deviations.autoraise import decide, draft, escalates
from gmp_edge.deviations.batch import Batch, batch_id_problem
from gmp_edge.deviations.lifecycle import amend
from gmp_edge.deviations.model import Evidence, ExcursionKind, ExcursionSummary, ProductionState
from gmp_edge.historian.store import Store, StoredReading
from gmp_edge.limits.engine import Evaluator, LimitEvent, activation_text
from gmp_edge.limits.model import IN_OPERATION, Condition, LimitSet
from gmp_edge.limits.trend import cusum, ewma
from gmp_edge.monitoring.production import ProductionTracker
from gmp_edge.monitoring.records import (
    AlarmBook,
    BatchBook,
    DeviationBook,
    EngineState,
    LimitSetBook,
)
from gmp_edge.monitoring.setup import build_limit_set

log = logging.getLogger("gmp_edge.monitoring")
SYSTEM = "system:monitoring"
STATE_KEY = "engine"
_LOWER = {
    Priority.CRITICAL: Priority.HIGH,
    Priority.HIGH: Priority.MEDIUM,
    Priority.MEDIUM: Priority.LOW,
    Priority.LOW: Priority.LOW,
}
MINUTE_US = 60_000_000


SAVE_EVERY_S = 5.0  # the running engine saves its restart state at most this often


@dataclass
class Books:
    """Where the engine keeps its records (all in the edge box's database)."""

    alarms: AlarmBook
    deviations: DeviationBook
    batches: BatchBook
    limit_sets: LimitSetBook
    state: EngineState

    @classmethod
    def open(cls, trail: AuditTrail) -> Books:
        """Open every book on the trail's database file."""
        return cls(
            AlarmBook(trail),
            DeviationBook(trail),
            BatchBook(trail),
            LimitSetBook(trail),
            EngineState(trail.path),
        )

    def close(self) -> None:
        """Close every book."""
        for b in (self.alarms, self.deviations, self.batches, self.limit_sets, self.state):
            b.close()


@dataclass
class EngineStats:
    """What the health API shows about evaluation."""

    steps: int = 0
    readings: int = 0
    out_of_order: int = 0  # readings not after the tag's last evaluated one (not evaluated)
    lag_readings: int = 0  # committed but not yet evaluated after the last step
    last_step_ms: float | None = None
    last_step_us: int | None = None
    error: str | None = None
    alarm_latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=1000))

    def as_dict(self) -> dict[str, Any]:
        """JSON-able figures, with the latency percentiles of recent alarm activations."""
        lat = sorted(self.alarm_latency_ms)
        p = (lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))], 2)) if lat else None
        return {
            "steps": self.steps,
            "readings": self.readings,
            "out_of_order": self.out_of_order,
            "lag_readings": self.lag_readings,
            "last_step_ms": self.last_step_ms,
            "error": self.error,
            "alarm_latency_ms_p50": p(0.5) if p else None,
            "alarm_latency_ms_p99": p(0.99) if p else None,
        }


Notify = Callable[[str, str, str, str, str, str, dict[str, Any]], None]


def _policy(cfg: PlantConfig) -> AlarmPolicy:
    m = cfg.monitoring
    realarm = (
        {}
        if m.realarm_minutes is None
        else {p: int(m.realarm_minutes * MINUTE_US) for p in Priority}
    )
    escalate = (
        {}
        if m.escalate_after_minutes is None
        else {
            p: (int(m.escalate_after_minutes * MINUTE_US),)
            for p in (Priority.CRITICAL, Priority.HIGH)
        }
    )
    return AlarmPolicy(int(m.max_shelve_hours * 3600 * 1_000_000), realarm, escalate)


class MonitoringEngine:
    """Evaluates every committed reading against the limit set in force."""

    def __init__(
        self,
        cfg: PlantConfig,
        config_sha256: str,
        store: Store,
        books: Books,
        notify: Notify | None = None,
    ):
        self.cfg = cfg
        self._units = {t.path: t.unit for t in cfg.tags}  # for notification texts
        self.config_sha256 = config_sha256
        self.store = store
        self.books = books
        self.notify = notify
        # delivery counters of the notification sinks, for the health API (set by the service)
        self.notify_status: Callable[[], dict[str, Any]] | None = None
        self.policy = _policy(cfg)
        self.stats = EngineStats()
        self.lock = threading.RLock()  # steps and people's actions (API threads) take turns
        self._wake = asyncio.Event()
        self._woken_at: float | None = None
        self._room_of = {t.path: t.segments[2] for t in cfg.tags}
        self._equipment_of = {t.path: t.segments[3] for t in cfg.tags}
        self._grade = {r.id: (r.grade.value if r.grade else None) for r in cfg.rooms}
        self._entry: dict[str, LimitEntry] = {e.tag: e for e in cfg.limits}
        self.trackers: dict[str, ProductionTracker] = {
            p.room: ProductionTracker(
                p.room,
                p.state,
                p.state_tag,
                frozenset(p.in_operation_values),
                p.batch_tag,
                p.equipment,
            )
            for p in cfg.production
        }
        self._product = {p.room: p.product for p in cfg.production}
        self._state_tags = {p.state_tag: p.room for p in cfg.production if p.state_tag}
        self._batch_tags = {p.batch_tag: p.room for p in cfg.production if p.batch_tag}
        self.limit_set: LimitSet | None = None
        self.evaluators: dict[str, Evaluator] = {}
        self._needed = self._needed_tags(None)  # again with each limit set (_use)
        self.cursor = 0
        self.open_excursions: dict[str, str] = {}  # alarm id of an action/monitoring -> dev id
        self.trend: dict[str, list[float]] = {}

    # -- start -----------------------------------------------------------------------

    def start(self) -> None:
        """Install the configured limits, restore the saved state, or start from now."""
        with self.lock:
            baseline = build_limit_set(self.cfg, f"config:{self.config_sha256}", now_us())
            current, changed = self.books.limit_sets.install_baseline(
                baseline, f"configuration file sha256 {self.config_sha256}"
            )
            in_force = self.books.limit_sets.current(baseline.id) or current
            saved = self.books.state.load(STATE_KEY)
            if saved is not None:
                self.cursor = int(saved["cursor"])
                self.open_excursions = dict(saved.get("open_excursions", {}))
                self.trend = {k: list(v) for k, v in saved.get("trend", {}).items()}
                for room, d in saved.get("production", {}).items():
                    if room in self.trackers:
                        self.trackers[room].load(d)
            else:
                self.cursor = self.store.last_reading_id()
            self._use(in_force, saved if saved and not changed else None)
            log.info(
                "monitoring with limit set %s v%d (%d tags), from reading %d",
                in_force.id,
                in_force.version,
                len(in_force.limits),
                self.cursor,
            )

    def _needed_tags(self, limit_set: LimitSet | None) -> frozenset[str]:
        """The tags whose readings evaluation reads: the limits in force, trend rules, and
        the production state and batch tags."""
        return frozenset(
            {t.tag for t in (limit_set.limits if limit_set else ())}
            | {e.tag for e in self._entry.values() if e.trend is not None}
            | set(self._state_tags)
            | set(self._batch_tags)
        )

    def _use(self, limit_set: LimitSet, saved: dict[str, Any] | None) -> None:
        """Build one evaluator per room for ``limit_set`` (restoring saved timers if any)."""
        rooms: dict[str, list[Any]] = defaultdict(list)
        for t in limit_set.limits:
            rooms[self._room_of.get(t.tag, "")].append(t)
        evaluators: dict[str, Evaluator] = {}
        saved_rooms = (saved or {}).get("evaluators", {})
        for room, entries in rooms.items():
            subset = replace(limit_set, limits=tuple(entries))
            st = saved_rooms.get(room)
            tracker = self.trackers.get(room)
            if st is not None and (st["limit_set_id"], st["limit_set_version"]) == (
                limit_set.id,
                limit_set.version,
            ):
                evaluators[room] = Evaluator.from_state(subset, st)
            else:
                # a fresh evaluator starts in the room's current production state
                timeline = [(0, tracker.state)] if tracker and tracker.state else []
                evaluators[room] = Evaluator(subset, timeline)
        self.limit_set = limit_set
        self.evaluators = evaluators
        self._needed = self._needed_tags(limit_set)

    def switch_limit_set(self, limit_set: LimitSet) -> None:
        """A newly approved limit set takes over: conditions of the old one clear first."""
        with self.lock:
            at = now_us()
            for ev in self.evaluators.values():
                for e in ev.retire(at):
                    self._on_event(e, at)
            self._use(limit_set, None)
            self._save()

    # -- the loop --------------------------------------------------------------------

    def committed(self) -> None:
        """Commit listener: wake the loop at once (alarms within the commit's moment)."""
        if self._woken_at is None:
            self._woken_at = time.perf_counter()
        with contextlib.suppress(RuntimeError):  # called from the loop thread only
            self._wake.set()

    _saved_at = -math.inf  # monotonic time of the last save of the restart state

    async def run(self, stop: asyncio.Event) -> None:
        """Step after every commit (and at least every ``evaluate_every_s``) until stop; the
        restart state is saved every ``SAVE_EVERY_S`` and by the last step."""
        every = self.cfg.monitoring.evaluate_every_s
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=every)
            self._wake.clear()
            persist = time.monotonic() - self._saved_at >= SAVE_EVERY_S
            try:
                await asyncio.to_thread(self.step, None, 20_000, persist)
                self.stats.error = None
            except Exception as exc:  # keep monitoring alive; the health API shows it
                log.exception("monitoring step failed")
                self.stats.error = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(1.0)
        await asyncio.to_thread(self.step)  # what was committed last is evaluated too

    def step(self, now: int | None = None, batch: int = 20_000, persist: bool = True) -> int:
        """Evaluate what was committed since the last step; returns readings evaluated.

        ``persist=False`` (the running loop, between its saves) leaves the restart state
        unsaved unless a deviation was linked to an excursion in this step: the state is
        every evaluator's timers, and writing it after every commit was a quarter of a
        10,000-tag box's CPU. What is not saved is recomputed at the next start from the
        saved cursor (evaluation is deterministic; alarms already raised are not raised
        again, their state is in the books)."""
        t0 = time.perf_counter()
        self._step_woken, self._woken_at = self._woken_at, None
        with self.lock:
            total = 0
            while True:
                # only the tags evaluation reads: most tags have no limit, and turning their
                # rows into objects was most of a 10,000-tag box's evaluation time
                rows, upto = self.store.readings_of_after(self.cursor, batch, self._needed)
                if upto <= self.cursor:
                    break
                self._evaluate([r for _, r in rows], now)
                scanned, self.cursor = upto - self.cursor, upto
                total += len(rows)
                if scanned < batch:
                    break
            self._tick(now if now is not None else now_us())
            if persist or self._links_changed:
                self._save()
        self.stats.steps += 1
        self.stats.readings += total
        self.stats.last_step_ms = round((time.perf_counter() - t0) * 1000, 3)
        self.stats.last_step_us = now_us()
        self._step_woken = None
        return total

    # perf_counter of the commit that woke the running step (None: not woken by a commit)
    _step_woken: float | None = None

    def _evaluate(self, rows: list[StoredReading], now: int | None) -> None:
        by_room: dict[str, list[StoredReading]] = defaultdict(list)
        for r in rows:
            room = self._room_of.get(r.tag)
            if room is not None:
                by_room[room].append(r)
        for room, readings in by_room.items():
            readings.sort(key=lambda r: r.ts_us)
            self._evaluate_room(room, readings, now)

    def _evaluate_room(self, room: str, readings: list[StoredReading], now: int | None) -> None:
        ev = self.evaluators.get(room)
        tracker = self.trackers.get(room)
        pending: dict[str, list[StoredReading]] = defaultdict(list)

        def flush() -> None:
            if ev is None:
                pending.clear()
                return
            for tag, rs in pending.items():
                last = ev._last_ts.get(tag)
                keep = [r for r in rs if last is None or r.ts_us > last]
                # strictly increasing per tag: drop repeats of one timestamp, count them
                dedup: list[StoredReading] = []
                for r in keep:
                    if dedup and r.ts_us <= dedup[-1].ts_us:
                        continue
                    dedup.append(r)
                self.stats.out_of_order += len(rs) - len(dedup)
                if not dedup:
                    continue
                # lists: a step's one or two readings a tag take the evaluator's quiet path
                ts = [r.ts_us for r in dedup]
                val = [
                    float(r.value) if isinstance(r.value, int | float) else math.nan for r in dedup
                ]
                q = [int(r.quality) for r in dedup]
                for e in ev.feed(tag, ts, val, q):
                    self._on_event(e, now)
                self._trend(tag, dedup, now)
            pending.clear()

        for r in readings:
            if tracker is not None and r.quality is Quality.GOOD:
                if r.tag == tracker.state_tag and tracker.observe_state(r.ts_us, r.value):
                    flush()
                    if ev is not None:
                        latest = max(ev._last_ts.values(), default=-1)
                        ev.add_state(max(r.ts_us, latest + 1), tracker.state or "")
                if r.tag == tracker.batch_tag:
                    change = tracker.observe_batch(r.value)
                    if change is not None:
                        self._batch_change(tracker, r.ts_us, *change)
            pending[r.tag].append(r)
        flush()

    # -- batches from the equipment ------------------------------------------------------

    def _batch_change(
        self, tracker: ProductionTracker, ts: int, ended: str | None, started: str | None
    ) -> None:
        books = self.books.batches
        actor = f"{SYSTEM}:{tracker.batch_tag}"
        if ended is not None:
            b = books.get(ended)
            if b is not None and b.end_us is None:
                books.end(
                    actor, ended, max(ts, b.start_us + 1), "batch id changed on the equipment"
                )
        problem = None if started is None else batch_id_problem(started)
        if started is not None and problem:
            # the batch is not recorded under an id no route, report or topic can carry;
            # the refusal is in the audit trail and the log, never silent
            log.warning("batch tag %s: %s", tracker.batch_tag, problem)
            books.trail.append(actor, "batch.refused", "batch", started[:200], problem)
        elif started is not None and books.get(started) is None:
            equipment = (tracker.equipment,) if tracker.equipment else ()
            books.start(
                actor,
                Batch(
                    started,
                    self._product.get(tracker.room, ""),
                    equipment,
                    (tracker.room,),
                    ts,
                    None,
                ),
                "batch id appeared on the equipment",
            )

    # -- condition changes -> alarms and deviations ------------------------------------

    def _priority(self, tag: str, kind: ConditionKind) -> Priority:
        entry = self._entry.get(tag)
        base = Priority(entry.priority) if entry else Priority.HIGH
        if kind in (ConditionKind.ALERT_HIGH, ConditionKind.ALERT_LOW):
            return _LOWER[base]
        if kind is ConditionKind.OOT:
            return Priority.LOW
        return base

    def _alarm(self, tag: str, kind: ConditionKind) -> Alarm:
        alarm_id = f"{tag}#{kind.value}"
        found = self.books.alarms.get(alarm_id)
        return found or am.new_alarm(alarm_id, tag, kind, self._priority(tag, kind))

    def _on_event(self, e: LimitEvent, now: int | None) -> None:
        kind = ConditionKind(e.condition.value)
        alarm = self._alarm(e.tag, kind)
        at = now if now is not None else now_us()
        if e.active and not alarm.condition_active:
            new, tr = am.activate(
                alarm,
                e.ts_us,
                value=e.value,
                limit=e.limit,
                limit_set_id=e.limit_set_id,
                limit_set_version=e.limit_set_version,
                actor=SYSTEM,
                reason=e.reason.value,
            )
            self._raised(
                new,
                tr,
                f"{kind.value} on {e.tag}",
                activation_text(e, self._units.get(e.tag, "")),
            )
            if kind in (
                ConditionKind.ACTION_HIGH,
                ConditionKind.ACTION_LOW,
                ConditionKind.MONITORING_UNAVAILABLE,
            ):
                self._maybe_raise(e, new, at)
        elif not e.active and alarm.condition_active:
            new, tr = am.clear(alarm, e.ts_us, value=e.value, actor=SYSTEM, reason=e.reason.value)
            self.books.alarms.save(new, [tr])
            dev_id = self.open_excursions.pop(new.id, None)
            self._links_changed = self._links_changed or dev_id is not None
            if dev_id is not None:
                self._excursion_ended(dev_id, e, new, at)

    def _summary(self, e: LimitEvent, alarm: Alarm, end: int | None) -> ExcursionSummary | None:
        room = self._room_of[e.tag]
        tracker = self.trackers.get(room)
        state = tracker.state if tracker else None
        if e.condition is Condition.MONITORING_UNAVAILABLE:
            entry = self._entry.get(e.tag)
            # monitoring loss matters for continuously monitored tags during production
            if not (entry and entry.continuous_monitoring and state == IN_OPERATION):
                return None
            kind = ExcursionKind.MONITORING_LOSS
        else:
            kind = ExcursionKind.ACTION
        start = e.excursion_start_us
        stop = end if end is not None else e.ts_us
        return ExcursionSummary(
            tag=e.tag,
            room=room,
            kind=kind,
            start_us=start,
            duration_us=max(0, stop - start),
            production_state=ProductionState(state or "at_rest"),
            end_us=end,
            peak=e.peak,
            grade=self._grade.get(room),
            equipment=self._equipment_of.get(e.tag),
            continuous_monitoring=bool(
                self._entry.get(e.tag) and self._entry[e.tag].continuous_monitoring
            ),
            excursion_id=f"{alarm.id}@{start}",
            limit_set_id=e.limit_set_id,
            limit_set_version=e.limit_set_version,
            alarm_ids=(alarm.id,),
        )

    def _maybe_raise(self, e: LimitEvent, alarm: Alarm, at: int) -> None:
        summary = self._summary(e, alarm, None)
        if summary is None:
            return
        decision = decide(summary, self.books.batches.list(), at)
        if not decision.raise_deviation:
            return
        lost = summary.kind is ExcursionKind.MONITORING_LOSS
        what = "Monitoring lost" if lost else "Action limit exceeded"
        title = f"{what}: {e.tag.split('/', 2)[-1]}"
        dev, tr = draft(
            decision,
            summary,
            deviation_id=self.books.deviations.next_id(at),
            title=title,
            discovered_us=at,
            actor=SYSTEM,
        )
        dev = self.books.deviations.create(dev, tr)
        self.open_excursions[alarm.id] = dev.id
        self._links_changed = True  # saved in this step: a replay would not find it again
        cls = dev.proposed_classification.value if dev.proposed_classification else ""
        self._announce_deviation("deviation.raised", dev.id, title, cls, dev.to_dict())

    def _excursion_ended(self, dev_id: str, e: LimitEvent, alarm: Alarm, at: int) -> None:
        dev = self.books.deviations.get(dev_id)
        if (
            dev is None
            or dev.evidence is None
            or dev.status.value not in ("open", "under_investigation")
        ):
            return
        ev = dev.evidence
        end = e.ts_us
        summary = ExcursionSummary(
            tag=ev.tag,
            room=ev.room,
            kind=ev.kind,
            start_us=ev.start_us,
            duration_us=max(0, end - ev.start_us),
            production_state=ev.production_state,
            end_us=end,
            peak=alarm.value_at_trip if e.peak is None else e.peak,
            grade=ev.grade,
            equipment=ev.equipment,
            excursion_id=ev.excursion_id,
            limit_set_id=ev.limit_set_id,
            limit_set_version=ev.limit_set_version,
            alarm_ids=ev.alarm_ids,
            continuous_monitoring=ev.kind is ExcursionKind.MONITORING_LOSS,
        )
        if ev.peak is not None and summary.peak is not None:
            worse = max if e.condition is Condition.ACTION_HIGH else min
            summary = replace(summary, peak=worse(ev.peak, summary.peak))
        changes: dict[str, Any] = {"evidence": Evidence.from_summary(summary)}
        decision = decide(summary, self.books.batches.list(), at)
        if dev.proposed_classification and escalates(
            dev.proposed_classification, decision.classification
        ):
            changes["proposed_classification"] = decision.classification
            changes["proposal_rule"] = decision.rule_name
        new, tr = amend(
            dev,
            dev.version,
            actor=SYSTEM,
            at_us=at,
            reason="excursion ended: end, duration and peak recorded",
            changes=changes,
        )
        self.books.deviations.update(new, tr, dev.version)

    # -- out of trend ----------------------------------------------------------------

    def _trend(self, tag: str, readings: list[StoredReading], now: int | None) -> None:
        entry = self._entry.get(tag)
        if entry is None or entry.trend is None:
            return
        rule = entry.trend
        good = [
            (r.ts_us, float(r.value))
            for r in readings
            if r.quality is Quality.GOOD and isinstance(r.value, int | float)
        ]
        if not good:
            return
        buf = self.trend.setdefault(tag, [])
        start = len(buf)
        buf.extend(v for _, v in good)
        x = np.asarray(buf, dtype=np.float64)
        signals = (
            ewma(x, rule.mean, rule.sigma).signals
            if rule.method == "ewma"
            else cusum(x, rule.mean, rule.sigma).signals
        )
        fired = {int(i) for i in signals if int(i) >= start}
        alarm = self._alarm(tag, ConditionKind.OOT)
        for offset, (ts, v) in enumerate(good):
            i = start + offset
            if i in fired and not alarm.condition_active:
                alarm, tr = am.activate(
                    alarm, ts, value=v, actor=SYSTEM, reason=f"{rule.method} out of trend"
                )
                self._raised(
                    alarm,
                    tr,
                    f"out of trend on {tag}",
                    f"{rule.method}: value {v} (target {rule.mean} ± {rule.sigma})",
                )
            elif i not in fired and alarm.condition_active:
                alarm, tr = am.clear(alarm, ts, value=v, actor=SYSTEM, reason="back in trend")
                self.books.alarms.save(alarm, [tr])
        del buf[: max(0, len(buf) - rule.window)]

    # -- timers, people's actions, notifications ----------------------------------------

    def _tick(self, now: int) -> None:
        for alarm in self.books.alarms.active():
            result = tick(alarm, now, self.policy)
            if result.transitions:
                self.books.alarms.save(result.alarm, list(result.transitions))
            for esc in result.escalations:
                self._announce(
                    "alarm.escalated",
                    result.alarm,
                    f"unacknowledged {result.alarm.kind.value} on {alarm.tag}",
                    f"escalation level {esc.level}: unacknowledged since {esc.unack_since_us}",
                )

    def act(self, alarm_id: str, fn: Callable[[Alarm], tuple[Alarm, Any]]) -> Alarm:
        """Apply a person's action (acknowledge, shelve...) under the engine's lock."""
        with self.lock:
            alarm = self.books.alarms.get(alarm_id)
            if alarm is None:
                raise KeyError(alarm_id)
            new, tr = fn(alarm)
            self.books.alarms.save(new, [tr])
            return new

    def _raised(self, alarm: Alarm, transition: Transition, title: str, text: str) -> None:
        # A limit alarm and a trend alarm are raised alike: saved, noted, announced.
        self.books.alarms.save(alarm, [transition])
        woken, self._step_woken = self._step_woken, None
        if woken is not None:  # the step's first alarm: committed -> alarm persisted
            self.stats.alarm_latency_ms.append((time.perf_counter() - woken) * 1000)
        self._announce("alarm.raised", alarm, title, text)

    def _announce(self, kind: str, alarm: Alarm, title: str, text: str) -> None:
        if self.notify is not None:
            self.notify(
                kind,
                alarm.priority.value,
                title,
                text,
                "alarm",
                alarm.id,
                {"state": alarm.state.value, "tag": alarm.tag},
            )

    def _announce_deviation(
        self, kind: str, dev_id: str, title: str, cls: str, data: dict[str, Any]
    ) -> None:
        if self.notify is not None:
            prio = "critical" if cls == "critical" else "high"
            self.notify(
                kind,
                prio,
                title,
                f"proposed classification {cls}",
                "deviation",
                dev_id,
                {"classification": cls},
            )

    _links_changed = False  # open_excursions changed since the last save

    def _save(self) -> None:
        self._links_changed = False
        self._saved_at = time.monotonic()
        self.books.state.save(
            STATE_KEY,
            {
                "cursor": self.cursor,
                "limit_set": [self.limit_set.id, self.limit_set.version]
                if self.limit_set
                else None,
                "evaluators": {room: ev.state() for room, ev in self.evaluators.items()},
                "production": {room: t.to_dict() for room, t in self.trackers.items()},
                "open_excursions": self.open_excursions,
                "trend": self.trend,
            },
        )
        self.stats.lag_readings = max(0, self.store.last_reading_id() - self.cursor)

    def behind_s(self, at_us: int) -> float:
        """Seconds between ``at_us`` and the receipt of the oldest committed reading not yet
        evaluated (0 when evaluation is caught up)."""
        oldest = self.store.first_edge_time_after(self.cursor)
        return 0.0 if oldest is None else max(0.0, (at_us - oldest) / 1e6)

    def system_condition(
        self, name: str, active: bool, value: float, limit: float, reason: str
    ) -> None:
        """An edge-box condition (e.g. the store near its disk budget) as a critical alarm.

        Its tag is ``<site>/edge/box/<name>`` so it shows with the plant's alarms.
        """
        tag = f"{self.cfg.site.id}/edge/box/store/{name}"
        with self.lock:
            alarm_id = f"{tag}#{ConditionKind.ACTION_HIGH.value}"
            alarm = self.books.alarms.get(alarm_id) or am.new_alarm(
                alarm_id, tag, ConditionKind.ACTION_HIGH, Priority.CRITICAL
            )
            if active and not alarm.condition_active:
                new, tr = am.activate(
                    alarm, now_us(), value=value, limit=limit, actor=SYSTEM, reason=reason
                )
                self.books.alarms.save(new, [tr])
                self._announce("alarm.raised", new, f"edge box: {name}", reason)
            elif not active and alarm.condition_active:
                new, tr = am.clear(alarm, now_us(), value=value, actor=SYSTEM, reason=reason)
                self.books.alarms.save(new, [tr])

    # -- views -----------------------------------------------------------------------

    def room_alarm_states(self) -> dict[str, list[Alarm]]:
        """Alarms not in normal state, per room (the live page's badges)."""
        out: dict[str, list[Alarm]] = defaultdict(list)
        for a in self.books.alarms.active():
            if a.state is not AlarmState.NORMAL:
                out[self._room_of.get(a.tag, "")].append(a)
        return out
