"""Pure hash chaining of audit entries (no I/O).

Each entry's hash is SHA-256 over the previous entry's hash and a canonical JSON
encoding of the entry, its sequence number included: changing a field, deleting an
entry or swapping two breaks the chain at the first affected entry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

GENESIS = "0" * 64  # the "previous hash" of entry 1


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit record. ``old``/``new`` are JSON-encodable values (or None)."""

    seq: int
    ts_us: int
    actor: str
    action: str
    record_type: str
    record_id: str
    reason: str
    old: object
    new: object
    prev_hash: str
    hash: str


def canonical(
    seq: int,
    ts_us: int,
    actor: str,
    action: str,
    record_type: str,
    record_id: str,
    reason: str,
    old: object,
    new: object,
) -> bytes:
    """The exact bytes that are hashed: sorted keys, no whitespace, UTF-8."""
    body = {
        "seq": seq,
        "ts_us": ts_us,
        "actor": actor,
        "action": action,
        "record_type": record_type,
        "record_id": record_id,
        "reason": reason,
        "old": old,
        "new": new,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(prev_hash: str, body: bytes) -> str:
    """SHA-256 (hex) chaining ``body`` to the previous entry's hash."""
    return hashlib.sha256(prev_hash.encode("ascii") + body).hexdigest()


@dataclass(frozen=True, slots=True)
class Break:
    """Where and why the chain is broken."""

    seq: int
    reason: str


def verify(entries: Iterable[AuditEntry]) -> tuple[int, str, Break | None]:
    """Check a chain given in storage order.

    Returns (number of entries checked, head hash, the first break or None).
    """
    expected_seq = 1
    prev = GENESIS
    n = 0
    for e in entries:
        n += 1
        if e.seq != expected_seq:
            what = "missing" if e.seq > expected_seq else "out of order or duplicated"
            return n, prev, Break(e.seq, f"entry {expected_seq} {what} (found {e.seq} instead)")
        if e.prev_hash != prev:
            return n, prev, Break(e.seq, "previous-hash link does not match the entry before")
        body = canonical(
            e.seq, e.ts_us, e.actor, e.action, e.record_type, e.record_id, e.reason, e.old, e.new
        )
        if entry_hash(prev, body) != e.hash:
            return n, prev, Break(e.seq, "content does not match its hash (entry was altered)")
        prev = e.hash
        expected_seq += 1
    return n, prev, None
