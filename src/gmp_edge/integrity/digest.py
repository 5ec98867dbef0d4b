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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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
