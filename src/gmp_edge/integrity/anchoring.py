"""Taking anchors of a store, and the check a store must pass before a service writes to it."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from gmp_edge.clock import now_us
from gmp_edge.errors import GmpEdgeError
from gmp_edge.integrity import keys
from gmp_edge.integrity.anchors import (
    CLOSING_KINDS,
    Anchor,
    anchors_path_for,
    append_anchor,
    make_anchor,
    read_anchors,
)
from gmp_edge.integrity.check import Heads, anchor_mismatch, sqlite_integrity, store_heads


class StoreRefused(GmpEdgeError, RuntimeError):
    """The store is damaged or does not match its anchors: no service may write to it."""


def _heads(store: Path) -> Heads:
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        conn.execute("begin")
        return store_heads(conn)
    finally:
        conn.close()


def anchor_now(store: Path, kind: str, at_us: int | None = None) -> Anchor:
    """Sign the store's two heads with the box key and append them to its anchors file.

    Raises OSError when the file cannot be written (a full disk) and sqlite3.Error when the
    store cannot be read; the caller decides what that means (the service logs it and
    turns health failed, a command fails)."""
    heads = _heads(store)
    key = keys.load_or_create(keys.key_path_for(store))
    anchor = make_anchor(
        key, at_us if at_us is not None else now_us(), kind, heads.audit, heads.seal
    )
    append_anchor(anchors_path_for(store), anchor)
    return anchor


@dataclass(frozen=True, slots=True)
class Preflight:
    """What the store looked like before the service opened it for writing."""

    newest: Anchor | None
    unanchored_audit: int
    unanchored_blocks: int

    @property
    def crashed(self) -> bool:
        """The previous run did not end with a stop anchor (killed, power lost, crashed)."""
        return (
            self.newest is not None
            and not self.newest.legacy
            and (self.newest.kind not in CLOSING_KINDS)
        )


def preflight(store: Path) -> Preflight:
    """Refuse (:class:`StoreRefused`, one sentence) a store that is damaged, or that is
    emptied, replaced, cut back or rewritten against its newest anchor, or that was written
    to after a clean stop. A store that has no anchors yet (new) passes."""
    anchors_file = anchors_path_for(store)
    anchors, _ = read_anchors(anchors_file)
    exists = store.exists() and store.stat().st_size > 0
    if exists:
        damaged = sqlite_integrity(store)
        if damaged:
            raise StoreRefused(
                f"store {store} is damaged ({damaged[0]}); it was not opened for writing:"
                " restore it from a backup ('gmp-edge verify' lists what it can read)"
            )
    if not anchors:
        return Preflight(None, 0, 0)
    newest = anchors[-1]
    if not exists:
        raise StoreRefused(
            f"store {store} is {'empty' if store.exists() else 'missing'}, but its anchors"
            f" {anchors_file} say it held audit entry {newest.audit_seq} at"
            f" {newest.describe()}: restore the store, or move the anchors file away to start"
            " a new store on purpose"
        )
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        conn.execute("begin")
        heads = store_heads(conn)
        mismatch = anchor_mismatch(conn, newest, heads)
    finally:
        conn.close()
    if mismatch is not None:
        raise StoreRefused(f"store {store} does not match its anchors {anchors_file}: {mismatch}")
    audit_after = heads.audit[0] - newest.audit_seq
    blocks_after = 0 if newest.seal_seq is None else heads.seal[0] - newest.seal_seq
    if newest.kind in CLOSING_KINDS and (audit_after or blocks_after):
        raise StoreRefused(
            f"store {store}: {audit_after} audit entries and {blocks_after} seal blocks follow"
            f" {newest.describe()} in {anchors_file}, written while gmp-edge was stopped;"
            " 'gmp-edge verify' shows them, 'gmp-edge verify --accept-tail REASON' records"
            " that they were reviewed"
        )
    return Preflight(newest, audit_after, blocks_after)
