"""Fetch the records a batch review is compiled from (the I/O half of the review).

``gather`` reads the store, the books and the audit trail once and hands everything to
the pure ``compile_review``. Readings come from the historian's per-minute segments plus
the readings not yet folded into them (``historian.store.read_records``, ADR 0018), on
read-only connections, a few tags per thread (SQLite releases the GIL while it steps).
``read_raw_arrays`` reads the same from the readings table row by row: the reference
the segments are checked against.
"""

from __future__ import annotations

import functools
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ParamSpec, TypeVar

import numpy as np

from gmp_edge.alarms.model import Transition as AlarmTransition
from gmp_edge.audit.chain import AuditEntry
from gmp_edge.audit.trail import AuditTrail
from gmp_edge.config import ModbusDevice, OpcuaDevice, PlantConfig, Tag
from gmp_edge.deviations.batch import Batch
from gmp_edge.errors import GmpEdgeError
from gmp_edge.historian.segments import RECORD
from gmp_edge.historian.store import Gap, Store, read_records
from gmp_edge.historian.tail import TailIndex
from gmp_edge.monitoring.engine import Books
from gmp_edge.monitoring.records import limit_set_record_id
from gmp_edge.review.compile import (
    EquipmentInfo,
    ReviewInputs,
    TagInput,
    compile_review,
    limit_versions_in_force,
    period_end,
)

#: Audit actions recording that a record was exported (read), not changed.
EXPORT_SUFFIX = "_exported"
#: Tag kinds without numeric values (PackML state, batch id, status words): not reviewed.
NON_NUMERIC_KINDS = frozenset({"state", "batch_id", "status"})
_ROW = np.dtype([("tid", "i8"), ("ts", "i8"), ("v", "f8"), ("q", "i1")])

P = ParamSpec("P")
Inputs = TypeVar("Inputs")
Compiled = TypeVar("Compiled")


class BatchNotFound(GmpEdgeError, LookupError):
    """No batch with that id."""


def reported_interval_s(
    reported: Sequence[tuple[int, float]], start_us: int, end_us: int
) -> float | None:
    """The effective interval over ``[start_us, end_us)`` of a device that reported its
    own (``(from, seconds)``, oldest first): period length over the samples expected, each
    stretch at the interval in force, a stretch before the first report at the first one
    (the device's setting, which the edge had not read yet; as for a polled tag, what was
    not collected then is missing); None when nothing was reported (unknown)."""
    expected = 0.0
    for i, (from_us, seconds) in enumerate(reported):
        lo = start_us if i == 0 else max(from_us, start_us)
        hi = min(reported[i + 1][0] if i + 1 < len(reported) else end_us, end_us)
        if hi > lo and seconds > 0:
            expected += (hi - lo) / 1e6 / seconds
    if expected <= 0:
        return None
    return (end_us - start_us) / 1e6 / expected


def expected_interval_s(cfg: PlantConfig, tag: Tag, reported: float | None = None) -> float | None:
    """The sample interval a tag is expected to deliver at.

    A particle counter's record tag: the counter's own cycle (hold + sample time) as it
    reported it (``reported``, see :func:`reported_interval_s`), None while unknown; never
    the poll interval, which says how often we look, not how often it samples. Other Modbus
    tags: the device's poll interval. OPC UA: the sampling interval of a subscription (the
    publishing interval if sampling is 0 = fastest), the poll interval when polling.
    """
    if tag.record is not None:
        return reported
    try:
        dev = cfg.device(tag.device)
    except KeyError:
        return None
    if isinstance(dev, ModbusDevice):
        return dev.poll_interval_s
    if isinstance(dev, OpcuaDevice):
        if dev.mode == "polling":
            return dev.poll_interval_s
        ms = dev.sampling_interval_ms or dev.publishing_interval_ms
        return ms / 1000.0
    return None


def tags_in_scope(cfg: PlantConfig, batch: Batch) -> list[Tag]:
    """Numeric tags in the batch's rooms or on its equipment."""
    out = []
    for t in cfg.tags:
        seg = t.segments
        if t.kind.value in NON_NUMERIC_KINDS or len(seg) != 5:
            continue
        if seg[2] in batch.rooms or seg[3] in batch.equipment:
            out.append(t)
    return out


def _connect_ro(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(
        f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
    )
    conn.execute("pragma busy_timeout=5000")
    # map the file instead of copying every page through read(): a third faster on a
    # review's few hundred MB of segments
    conn.execute("pragma mmap_size=4294967296")
    return conn


def _rows(
    conn: sqlite3.Connection, ids: Sequence[int | None], start_us: int, end_us: int
) -> list[np.ndarray]:
    # the reference: straight from the readings table in one scan (it has no per-tag
    # index, ADR 0029), sorted here by (time, id), sharing no code with the segments path
    known = sorted({i for i in ids if i is not None})
    rows = np.fromiter(
        conn.execute(
            "select tag_id, ts_us, case when typeof(value) in ('real', 'integer') then value"
            " else 0.0 end, case when typeof(value) in ('real', 'integer') then quality"
            " else 3 end from readings"
            f" where ts_us>=? and ts_us<? and tag_id in ({','.join(map(str, known))})"
            " order by tag_id, ts_us, rowid",
            (start_us, end_us),
        ),
        dtype=_ROW,
    )
    out = []
    for tid in ids:
        mine = rows[rows["tid"] == tid] if tid is not None else rows[:0]
        arr = np.empty(mine.size, dtype=RECORD)
        arr["ts"], arr["v"], arr["q"] = mine["ts"], mine["v"], mine["q"]
        out.append(arr)
    return out


Reader = Callable[[sqlite3.Connection, Sequence[int | None], int, int], list[np.ndarray]]


def _on_own_connection(
    read: Reader,
) -> Callable[[Path, Sequence[int | None], int, int], list[np.ndarray]]:
    """``read`` on a read-only connection of its own (one per worker thread)."""

    def run(path: Path, ids: Sequence[int | None], start_us: int, end_us: int) -> list[np.ndarray]:
        conn = _connect_ro(path)
        try:
            return read(conn, ids, start_us, end_us)
        finally:
            conn.close()

    return run


_read_rows = _on_own_connection(_rows)  # row by row from the readings table (the reference)


def segments_differ(
    store_path: Path, paths: Sequence[str], start_us: int, end_us: int
) -> tuple[int, list[tuple[str, int, int]]]:
    """Compare the segments path with the readings table over one snapshot of the store.

    Both are read in one read transaction, so readings committed or folded meanwhile (a
    running box) are in both or in neither. Returns the readings checked and, per tag that
    differs, (path, readings from the segments, readings from the table).
    """
    conn = _connect_ro(store_path)
    try:
        conn.execute("begin")  # WAL: every read below sees the same committed state
        known = dict(conn.execute("select path, id from tags").fetchall())
        ids = [known.get(p) for p in paths]
        fast = read_records(conn, ids, start_us, end_us)  # in the snapshot begun above
        raw = _rows(conn, ids, start_us, end_us)
        conn.execute("rollback")  # read only
    finally:
        conn.close()
    checked = sum(int(r.size) for r in raw)
    differ = [
        (p, int(f.size), int(r.size))
        for p, f, r in zip(paths, fast, raw, strict=True)
        if f.tobytes() != r.tobytes()
    ]
    return checked, differ


def _by_tag(
    store_path: Path,
    paths: Sequence[str],
    start_us: int,
    end_us: int,
    threads: int,
    read: Callable[[Path, Sequence[int | None], int, int], list[np.ndarray]],
) -> dict[str, np.ndarray]:
    conn = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True)
    try:
        known = dict(conn.execute("select path, id from tags").fetchall())
    finally:
        conn.close()
    ids = [known.get(p) for p in paths]
    threads = max(1, min(threads, len(ids)))
    chunks = [ids[i::threads] for i in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(lambda c: read(store_path, c, start_us, end_us), chunks))
    out: dict[str, np.ndarray] = {}
    for k, res in enumerate(results):
        for j, arr in enumerate(res):
            out[paths[k + j * threads]] = arr
    return out


def read_tag_arrays(
    store_path: Path,
    paths: Sequence[str],
    start_us: int,
    end_us: int,
    threads: int = 2,
    index: TailIndex | None = None,
) -> dict[str, np.ndarray]:
    """Readings (fields ts, v, q) per tag in ``[start_us, end_us)``, by time.

    From the segments plus the not-yet-indexed readings (ADR 0018; ``index``: the writer's
    tail index, in its process); the same values as :func:`read_raw_arrays`, which the
    tests hold it to.
    """
    read = _on_own_connection(functools.partial(read_records, index=index))
    return _by_tag(store_path, paths, start_us, end_us, threads, read)


def read_raw_arrays(
    store_path: Path, paths: Sequence[str], start_us: int, end_us: int, threads: int = 2
) -> dict[str, np.ndarray]:
    """As :func:`read_tag_arrays`, row by row from the readings table (the reference)."""
    return _by_tag(store_path, paths, start_us, end_us, threads, _read_rows)


def tag_input(
    cfg: PlantConfig,
    tag: Tag,
    records: np.ndarray,
    gaps: Sequence[Gap] = (),
    transitions: Sequence[AlarmTransition] = (),
    reported_interval: float | None = None,
) -> TagInput:
    """A configured tag's review input from its records (fields ts, v, q) and events;
    ``reported_interval``: the device's own interval over the period, where it gives one."""
    seg = tag.segments
    return TagInput(
        tag=tag.path,
        room=seg[2],
        equipment=seg[3],
        unit=tag.unit,
        kind=tag.kind.value,
        interval_s=expected_interval_s(cfg, tag, reported_interval),
        ts_us=records["ts"],
        value=records["v"],
        quality=records["q"],
        gaps=tuple(gaps),
        transitions=tuple(transitions),
    )


def quarantined_count(store_path: Path, paths: Sequence[str], start_us: int, end_us: int) -> int:
    """Readings of ``paths`` in ``[start_us, end_us)`` held in the forwarding quarantine."""
    if not paths:
        return 0
    conn = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True)
    try:
        marks = ",".join("?" * len(paths))
        row = conn.execute(
            f"select count(*) from quarantine where ts_us>=? and ts_us<? and tag in ({marks})",
            (start_us, end_us, *paths),
        ).fetchone()
        return int(row[0])
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return 0  # nothing was ever forwarded
        raise
    finally:
        conn.close()


def gather(
    store: Store,
    books: Books,
    trail: AuditTrail,
    cfg: PlantConfig,
    batch_id: str,
    now_us: int,
    threads: int = 2,
) -> ReviewInputs:
    """Read everything the review of ``batch_id`` needs, as of ``now_us``."""
    batch = books.batches.get(batch_id)
    if batch is None:
        raise BatchNotFound(f"no batch {batch_id!r}")
    start, end = batch.start_us, period_end(batch, now_us)
    tags = tags_in_scope(cfg, batch)
    paths = [t.path for t in tags]
    arrays = read_tag_arrays(store.path, paths, start, end, threads, store.tail)
    gaps: dict[str, list[Gap]] = defaultdict(list)
    in_scope = set(paths)
    for g in store.gaps(None, start, end, limit=1_000_000):
        if g.tag in in_scope:
            gaps[g.tag].append(g)
    trs: dict[str, list[AlarmTransition]] = defaultdict(list)
    for tr in books.alarms.history(None, start, max(now_us, end) + 1, limit=10_000_000):
        if tr.tag in in_scope:
            trs[tr.tag].append(tr)
    inputs = [
        tag_input(
            cfg,
            t,
            arrays[t.path],
            gaps.get(t.path, ()),
            trs.get(t.path, ()),
            reported_interval_s(store.sample_intervals(t.path, start, end), start, end)
            if t.record is not None
            else None,
        )
        for t in tags
    ]
    used_eq = set(batch.equipment) | {t.segments[3] for t in tags}
    equipment = [e for e in equipment_infos(cfg) if e.id in used_eq]
    limit_sets = books.limit_sets.history()
    deviations = books.deviations.about_batch(batch, now_us)
    entries: dict[int, AuditEntry] = {}

    def add(found: Sequence[AuditEntry]) -> None:
        for e in found:
            # a report or package handed out reads the record, it does not change it: were
            # exports part of the review, opening the PDF would invalidate the review a
            # reviewer is about to sign (ADR 0017); the trail itself keeps them
            if not e.action.endswith(EXPORT_SUFFIX):
                entries[e.seq] = e

    add(trail.entries(record_type="batch", record_id=batch_id))
    for d in deviations:
        add(trail.entries(record_type="deviation", record_id=d.id))
    for v in limit_versions_in_force(limit_sets, start, end):
        add(
            trail.entries(
                record_type="limit_set", record_id=limit_set_record_id(v.set_id, v.version)
            )
        )
    for alarm_id in sorted({x.alarm_id for xs in trs.values() for x in xs}):
        add(trail.entries(record_type="alarm", record_id=alarm_id, start_us=start))
    return ReviewInputs(
        batch=batch,
        now_us=now_us,
        tags=inputs,
        limit_sets=limit_sets,
        runs=store.service_runs(),
        equipment=equipment,
        deviations=deviations,
        audit_entries=list(entries.values()),
        audit_verdict=trail.verify(),
        quarantined=quarantined_count(store.path, paths, start, end),
        workers=threads,
    )


def then(
    gather: Callable[P, Inputs], compile: Callable[[Inputs], Compiled]
) -> Callable[P, Compiled]:
    """``compile(gather(...))`` with gather's parameters: read, then compile."""

    def gathered_and_compiled(*args: P.args, **kwargs: P.kwargs) -> Compiled:
        return compile(gather(*args, **kwargs))

    gathered_and_compiled.__doc__ = f"{compile.__doc__}\n\nParameters: as ``{gather.__name__}``."
    return gathered_and_compiled


# the review of ``batch_id`` (readiness included), with gather's parameters
review_batch = then(gather, compile_review)


def equipment_infos(cfg: PlantConfig) -> list[EquipmentInfo]:
    """The configured equipment as the review sees it."""
    return [
        EquipmentInfo(e.id, e.kind, e.room, e.name, e.qualified_until, e.calibration_due)
        for e in cfg.equipment
    ]
