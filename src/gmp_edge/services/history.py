"""What the record says, for people who look back: alarm history and ISA-18.2 performance,
excursions, equipment status and the process validation summary. Nothing here writes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict, Unpack

from gmp_edge.alarms import metrics
from gmp_edge.alarms.model import Transition
from gmp_edge.clock import Clock
from gmp_edge.monitoring.engine import MonitoringEngine
from gmp_edge.release.excursions import ExcursionRecord, excursions, search
from gmp_edge.review.validation import EquipmentOverview, Policy, ProcessValidationSummary
from gmp_edge.review.validation_gather import MAX_BATCHES, equipment_view
from gmp_edge.review.validation_gather import process_validation as compile_validation
from gmp_edge.services.errors import Invalid, NotFound

__all__ = ["MAX_BATCHES", "AlarmPerformance", "ExcursionFilters", "HistoryService"]


@dataclass(frozen=True, slots=True)
class AlarmPerformance:
    """ISA-18.2 alarm-system performance over ``[start_us, end_us)``."""

    start_us: int
    end_us: int
    annunciated: int
    chattering: list[metrics.Chattering]
    floods: list[metrics.FloodPeriod]
    time_in_flood: float
    standing: list[metrics.StandingAlarm]


class ExcursionFilters(TypedDict, total=False):
    """The excursion filters handed to :func:`gmp_edge.release.excursions.search` as given
    (``None`` or left out: any)."""

    room: str | None
    tag: str | None
    level: str | None
    status: str | None


class HistoryService:
    """Read-only views over the books and the store."""

    def __init__(self, engine: MonitoringEngine, clock: Clock):
        self._engine = engine
        self.clock = clock  # "now" for the views that count from it (tests fix it)

    def alarm_history(
        self, tag: str | None, start_us: int | None, end_us: int | None, limit: int
    ) -> list[Transition]:
        """Alarm transitions, oldest first, by tag and time."""
        if start_us is not None and end_us is not None and start_us >= end_us:
            raise Invalid("start must be before end")
        return self._engine.books.alarms.history(tag, start_us, end_us, limit)

    def alarm_performance(self, hours: float) -> AlarmPerformance:
        """Annunciations, chattering alarms, floods and standing alarms of the last hours."""
        end = self.clock.now_us()
        start = end - int(hours * 3_600_000_000)
        trs = self._engine.books.alarms.history(None, start, end, 1_000_000)
        periods = metrics.floods(trs)
        return AlarmPerformance(
            start,
            end,
            sum(1 for t in trs if metrics.is_annunciation(t)),
            metrics.chattering(trs),
            periods,
            metrics.time_in_flood(periods, start, end),
            metrics.standing_alarms(trs, end),
        )

    def excursions(
        self,
        *,
        batch: str | None = None,
        start_us: int | None = None,
        end_us: int | None = None,
        **filters: Unpack[ExcursionFilters],
    ) -> list[ExcursionRecord]:
        """Excursions matching every filter, newest first; ``batch`` limits them to its
        window, rooms and equipment."""
        books = self._engine.books
        s, e = start_us, end_us
        scope = None
        if batch is not None:
            b = books.batches.get(batch)
            if b is None:
                raise NotFound(f"no batch {batch!r}")
            s = b.start_us if s is None else max(s, b.start_us)
            e = b.end_us if e is None else (e if b.end_us is None else min(e, b.end_us))
            scope = (set(b.rooms), set(b.equipment))
        deviation_of = {
            d.evidence.excursion_id: d.id
            for d in books.deviations.list(limit=100_000)
            if d.evidence is not None and d.evidence.excursion_id
        }
        items = search(
            excursions(books.alarms.history(None, None, None, 1_000_000), deviation_of),
            start_us=s,
            end_us=e,
            scope=scope,
            **filters,
        )
        items.sort(key=lambda x: x.start_us, reverse=True)
        return items

    def process_validation(
        self,
        product: str | None,
        start_us: int | None,
        end_us: int | None,
        policy: Policy,
        max_batches: int = MAX_BATCHES,
    ) -> ProcessValidationSummary:
        """Per press CPP, the batches' capability and trend (see ``review.validation``)."""
        if start_us is not None and end_us is not None and start_us >= end_us:
            raise Invalid("start is not before end")
        e = self._engine
        return compile_validation(
            e.store,
            e.books,
            e.cfg,
            self.clock.now_us(),
            product,
            start_us,
            end_us,
            policy,
            max_batches,
        )

    def equipment(self) -> tuple[EquipmentOverview, ...]:
        """Each configured piece of equipment: qualification and calibration now."""
        e = self._engine
        return equipment_view(e.books, e.cfg, self.clock.now_us())
