"""Start and end batches: one workflow for the API, MQTT (the MES) and the CLI."""

from __future__ import annotations

from collections.abc import Iterable

from gmp_edge.clock import Clock
from gmp_edge.deviations.batch import Batch, batch_id_problem, batch_time_problem
from gmp_edge.monitoring.records import BatchBook, RecordError, RecordNotFound
from gmp_edge.services.errors import Invalid, NotFound


class BatchService:
    """Batches in the rooms and on the equipment the plant configuration names."""

    def __init__(
        self,
        book: BatchBook,
        rooms: Iterable[str],
        clock: Clock,
        equipment: Iterable[str] | None = None,
    ):
        self._book = book
        self._rooms = frozenset(rooms)
        self._clock = clock
        # None: not checked (a book without a plant); else the ids a batch may name
        self._equipment = None if equipment is None else frozenset(equipment)

    def start(
        self,
        actor: str,
        batch_id: str,
        product: str,
        rooms: Iterable[str],
        equipment: Iterable[str] = (),
        start_us: int | None = None,
        reason: str = "",
    ) -> Batch:
        """Record a batch (from ``start_us``, default now); refuses a bad id, no room, an
        unknown room, an implausible start (``batch_time_problem``) or an id that exists
        already."""
        problem = batch_id_problem(batch_id)
        if problem:
            raise Invalid(problem)
        rooms = tuple(rooms)
        if not rooms:
            raise Invalid(f"batch {batch_id}: name at least one room")
        unknown = sorted({r for r in rooms if r not in self._rooms})
        if unknown:
            raise Invalid(f"unknown rooms {unknown}")
        equipment = tuple(equipment)
        if self._equipment is not None:
            # a mistyped press id would leave its parameters out of the batch review
            strange = sorted({e for e in equipment if e not in self._equipment})
            if strange:
                shown = ", ".join(repr(e[:64]) for e in strange[:5])
                raise Invalid(
                    f"unknown equipment {shown}; the plant has "
                    f"{', '.join(sorted(self._equipment)) or 'none'}"
                )
        now = self._clock.now_us()
        start = now if start_us is None else start_us
        if (late := batch_time_problem("start", start, now)) is not None:
            raise Invalid(late)
        batch = Batch(batch_id, product, tuple(equipment), rooms, start, None)
        try:
            return self._book.start(actor, batch, reason)
        except RecordError as exc:
            raise Invalid(str(exc)) from None

    def end(self, actor: str, batch_id: str, end_us: int | None = None, reason: str = "") -> Batch:
        """Record the end of a batch in progress (default now)."""
        now = self._clock.now_us()
        end = now if end_us is None else end_us
        if (late := batch_time_problem("end", end, now)) is not None:
            raise Invalid(late)
        try:
            return self._book.end(actor, batch_id, end, reason)
        except RecordNotFound as exc:
            raise NotFound(str(exc)) from None
        except RecordError as exc:
            raise Invalid(str(exc)) from None

    def get(self, batch_id: str) -> Batch:
        """The batch; NotFound if there is none."""
        b = self._book.get(batch_id)
        if b is None:
            raise NotFound(f"no batch {batch_id!r}")
        return b

    def list(self) -> list[Batch]:
        """Every batch, newest first."""
        return self._book.list()
