"""Fetch what the process validation summary and the equipment view are compiled from.

The I/O half of ``gmp_edge.review.validation``: batches, limit-set versions, alarm transitions and
deviations from the books; press CPP readings of each batch from the store through
``review.gather.read_tag_arrays`` (the batch review's own reader); equipment and tags from
the plant configuration. The compilation itself is pure (``gmp_edge.review.validation``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from gmp_edge.alarms.model import Transition as AlarmTransition
from gmp_edge.config import PlantConfig, Tag
from gmp_edge.deviations.batch import Batch
from gmp_edge.historian.store import Store
from gmp_edge.monitoring.engine import Books
from gmp_edge.review.compile import PRESS_KINDS
from gmp_edge.review.gather import (
    equipment_infos,
    read_tag_arrays,
    tag_input,
    tags_in_scope,
    then,
)
from gmp_edge.review.validation import (
    BatchData,
    EquipmentOverview,
    Policy,
    ValidationInputs,
    equipment_overview,
    summarise,
)

#: Batches summarised at most (the newest ended ones); each reads its whole press record.
MAX_BATCHES = 100


def press_tags(cfg: PlantConfig, batch: Batch) -> list[Tag]:
    """The batch's press CPP tags: press-parameter tags on the equipment the batch names.

    A batch that names no equipment has none: a press in its room may not have made it.
    """
    return [
        t
        for t in cfg.tags
        if t.kind.value in PRESS_KINDS and len(t.segments) == 5 and t.segments[3] in batch.equipment
    ]


def gather_validation(
    store: Store,
    books: Books,
    cfg: PlantConfig,
    now_us: int,
    product: str | None = None,
    start_us: int | None = None,
    end_us: int | None = None,
    policy: Policy | None = None,
    max_batches: int = MAX_BATCHES,
    threads: int = 2,
) -> ValidationInputs:
    """Read the batches of ``product`` (None: all) in progress at some time in
    ``[start_us, end_us)`` (None: open) and their press CPP records, as of ``now_us``.

    Only the newest ``max_batches`` ended batches are read (a note says so); running
    batches are passed without readings (the summary lists them as excluded).
    """
    found = [
        b
        for b in books.batches.list(start_us, end_us)  # newest first
        if product is None or b.product == product
    ]
    ended = [b for b in found if b.end_us is not None]
    notes = []
    if len(ended) > max_batches:
        notes.append(f"only the newest {max_batches} of {len(ended)} ended batches are summarised")
    chosen = ended[:max_batches]
    tags_of = {b.id: press_tags(cfg, b) for b in chosen}
    paths = sorted({t.path for ts in tags_of.values() for t in ts})
    transitions: dict[str, list[AlarmTransition]] = defaultdict(list)
    if chosen:
        first = min(b.start_us for b in chosen)
        for path in paths:  # per tag: indexed, and EM alarms are never read
            transitions[path] = books.alarms.history(path, first, now_us + 1, limit=10_000_000)
    batches: list[BatchData] = []
    for b in chosen:
        tags = tags_of[b.id]
        assert b.end_us is not None
        arrays = read_tag_arrays(
            store.path, [t.path for t in tags], b.start_us, b.end_us, threads, store.tail
        )
        inputs = [
            # transitions from the batch start on, as the batch review reads them
            tag_input(
                cfg,
                t,
                arrays[t.path],
                transitions=[x for x in transitions[t.path] if x.at_us >= b.start_us],
            )
            for t in tags
        ]
        batches.append(BatchData(b, tuple(inputs), tuple(books.deviations.about_batch(b, now_us))))
    batches += [BatchData(b) for b in found if b.end_us is None]
    return ValidationInputs(
        now_us=now_us,
        batches=batches,
        limit_sets=books.limit_sets.history(),
        product=product,
        start_us=start_us,
        end_us=end_us,
        policy=policy or Policy(),
        notes=tuple(notes),
    )


# the process validation summary, with gather_validation's parameters
process_validation = then(gather_validation, summarise)


def equipment_usage(cfg: PlantConfig, batches: Sequence[Batch]) -> list[tuple[Batch, set[str]]]:
    """Each batch with the equipment it used, counted as the batch review counts it: the
    batch's equipment and the equipment of the tags in its scope (rooms, equipment)."""
    return [(b, set(b.equipment) | {t.segments[3] for t in tags_in_scope(cfg, b)}) for b in batches]


def equipment_view(books: Books, cfg: PlantConfig, now_us: int) -> tuple[EquipmentOverview, ...]:
    """Every configured piece of equipment: status now and batches that used it lapsed."""
    return equipment_overview(
        equipment_infos(cfg), equipment_usage(cfg, books.batches.list()), now_us
    )
