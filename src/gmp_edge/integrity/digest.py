"""Pure digests of rows, seal blocks and their chain (no I/O).

A row is hashed as the ``repr`` of the tuple ``(rowid, *columns)`` as SQLite returns it:
ints, floats, text, bytes and None have one ``repr`` each (floats the shortest that
round-trips), so the same stored row always gives the same bytes, and a row moved to
another rowid does not. A range of rows is hashed in rowid order with a separator no
``repr`` contains unescaped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

GENESIS = bytes(32)  # the "previous hash" of block 1
_SEP = b"\n"  # repr escapes newlines inside strings and bytes


def row_digest(row: Sequence[object]) -> bytes:
    """SHA-256 of one stored row, ``(rowid, *columns)``."""
    return hashlib.sha256(repr(tuple(row)).encode()).digest()


class RowsHasher:
    """SHA-256 over rows ``(rowid, *columns)`` fed one at a time, in rowid order: the one
    encoding of a range, for the seal (``rows_digest``) and for the check that recomputes it."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self.n = 0

    def add(self, row: Sequence[object]) -> None:
        """Feed the next row."""
        self._h.update(repr(tuple(row)).encode())
        self._h.update(_SEP)
        self.n += 1

    def digest(self) -> bytes:
        """The digest of the rows fed so far."""
        return self._h.digest()


class _Group:
    """One equipment group's running digest within a block."""

    __slots__ = ("h", "n")

    def __init__(self) -> None:
        self.h = hashlib.sha256()
        self.n = 0


class ReadingsHasher:
    """A block's readings digest: the rows split by equipment (the tag path without its
    signal, ``site/area/room/equipment``), each group hashed as :class:`RowsHasher` hashes
    rows (the same bytes), and the groups combined (:func:`combine_groups`).

    Why groups: a batch's evidence holds the readings of its rooms and equipment only. With
    one digest over all a commit sealed, every block that also sealed another room's
    readings could be proven only by the chain; with one per equipment group, the package
    carries the other groups' digests and the verifier recomputes the batch's own from its
    rows. ``group_of(tag_id)`` names a reading's group; rows are ``(rowid, tag_id, ...)``.
    This is the commit path: one dict lookup per row (tag -> its group's hasher).
    """

    def __init__(self, group_of: Callable[[int], str]) -> None:
        self._group_of = group_of
        self._groups: dict[str, _Group] = {}
        # tag -> group name, shared with a TagGroups (its cache) so that a block of 10,000
        # tags does not call out once per tag
        shared = getattr(group_of, "known", None)
        self._known: dict[object, str] = {} if shared is None else shared
        self._cache = shared is None  # a shared cache is filled by its owner, who knows
        self.n = 0

    def add(self, row: Sequence[object]) -> None:
        """Feed the next row (rowid order)."""
        self.feed((row,))

    def feed(self, rows: Iterable[Sequence[object]]) -> None:
        """Feed rows in rowid order (the commit path: no call per row)."""
        known, groups, group_of, sep = self._known, self._groups, self._group_of, _SEP
        cache, n = self._cache, 0
        for row in rows:
            tag = row[1]
            key = known.get(tag)
            if key is None:
                key = group_of(cast(int, tag))
                if cache:
                    known[tag] = key
            g = groups.get(key)
            if g is None:
                g = groups[key] = _Group()
            g.h.update(repr(tuple(row)).encode() + sep)
            g.n += 1
            n += 1
        self.n += n

    def groups(self) -> dict[str, tuple[int, bytes]]:
        """group -> (rows, digest) of what was fed."""
        return {k: (g.n, g.h.digest()) for k, g in self._groups.items()}

    def digest(self) -> bytes:
        """The block's readings digest."""
        return combine_groups(self.groups())


def combine_groups(groups: Mapping[str, tuple[int, bytes]]) -> bytes:
    """SHA-256 over ``group<TAB>rows<TAB>digest hex<LF>`` for every group, sorted by name."""
    h = hashlib.sha256(b"gmp-edge readings by equipment 1\n")
    for key in sorted(groups):
        n, d = groups[key]
        h.update(f"{key}\t{n}\t{d.hex()}\n".encode())
    return h.digest()


def equipment_of(path: str) -> str:
    """The group of a tag: its path without the signal (``site/area/room/equipment``)."""
    return path.rsplit("/", 1)[0]


def readings_digest(
    rows: Iterable[Sequence[object]], group_of: Callable[[int], str]
) -> tuple[bytes, int]:
    """(digest, count) of readings rows in rowid order, grouped as :class:`ReadingsHasher`."""
    h = ReadingsHasher(group_of)
    h.feed(rows)
    return h.digest(), h.n


def rows_digest(rows: Iterable[Sequence[object]]) -> tuple[bytes, int]:
    """(SHA-256, count) of rows ``(rowid, *columns)`` in the order given (rowid order)."""
    h = RowsHasher()
    for row in rows:
        h.add(row)
    return h.digest(), h.n


@dataclass(frozen=True, slots=True)
class Change:
    """One row of a record table as a block sealed it: its digest, or None when deleted."""

    table: str
    rowid: int
    digest: bytes | None


def changes_digest(changes: Iterable[Change]) -> bytes:
    """SHA-256 over a block's row changes, in the order the block lists them."""
    h = hashlib.sha256()
    for c in changes:
        h.update(f"{c.table}\t{c.rowid}\t{'-' if c.digest is None else c.digest.hex()}".encode())
        h.update(_SEP)
    return h.digest()


@dataclass(frozen=True, slots=True)
class Block:
    """One seal block as stored: what one transaction changed, chained to the previous.

    ``kind``: ``commit`` (a transaction of the product), ``adopt`` (rows that existed before
    the table was sealed: a store from an earlier release), ``retention`` (readings up to
    ``readings_hi`` deleted by the retention policy; ``readings_lo`` is None then).
    """

    seq: int
    ts_us: int
    kind: str
    readings_lo: int | None
    readings_hi: int | None
    readings_n: int
    readings_sha256: bytes | None
    changes: int
    changes_sha256: bytes
    hash: bytes


def block_hash(
    prev: bytes,
    seq: int,
    ts_us: int,
    kind: str,
    readings_lo: int | None,
    readings_hi: int | None,
    readings_n: int,
    readings_sha256: bytes | None,
    changes: int,
    changes_sha256: bytes,
) -> bytes:
    """SHA-256 over the previous block's hash and this block's canonical content."""
    body = json.dumps(
        [
            seq,
            ts_us,
            kind,
            readings_lo,
            readings_hi,
            readings_n,
            None if readings_sha256 is None else readings_sha256.hex(),
            changes,
            changes_sha256.hex(),
        ],
        separators=(",", ":"),
    ).encode()
    return hashlib.sha256(prev + body).digest()


def expected_hash(prev: bytes, b: Block) -> bytes:
    """The hash block ``b`` must carry when its predecessor's hash is ``prev``."""
    return block_hash(
        prev,
        b.seq,
        b.ts_us,
        b.kind,
        b.readings_lo,
        b.readings_hi,
        b.readings_n,
        b.readings_sha256,
        b.changes,
        b.changes_sha256,
    )
