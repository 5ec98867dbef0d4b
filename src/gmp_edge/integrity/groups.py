"""Which equipment group a reading belongs to, read from the store's ``tags`` table.

The seal and every check group a block's readings the same way (``digest.ReadingsHasher``):
by the tag path without its signal. The ``tags`` table is itself sealed row by row, so a
path changed outside gmp-edge is found there, and regrouped readings no longer match.
"""

from __future__ import annotations

import sqlite3

from gmp_edge.integrity.digest import equipment_of


class TagGroups:
    """tag id -> equipment group over one connection, cached (tags are never renamed by the
    product; a tag registered later is looked up on first sight)."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn
        self.known: dict[object, str] = {}  # read directly by digest.ReadingsHasher

    def __call__(self, tag_id: int) -> str:
        """The group of ``tag_id`` (``?<id>`` for an id the tags table does not hold)."""
        key = self.known.get(tag_id)
        if key is None:
            try:
                row = self._conn.execute("select path from tags where id=?", (tag_id,)).fetchone()
            except sqlite3.OperationalError:  # no tags table: a bare readings store
                row = None
            if row is None:
                return f"?{tag_id}"  # not cached: the tag may be registered later
            key = self.known[tag_id] = equipment_of(str(row[0]))
        return key
