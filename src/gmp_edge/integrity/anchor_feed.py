"""The anchors file as a feed for destinations (MQTT, InfluxDB): its lines after a cursor.

A copy of every signed anchor outside the box (ADR 0027) means that even whoever holds the
box, its store and its anchors file cannot rewrite history the broker or the historian has
already received. The destination gets each line verbatim, so anyone holding the box key's
fingerprint can check the signature there. The cursor is the line number (1-based, counted
over every line as the file holds them, so it matches what ``gmp-edge verify`` names).

The file grows by one line every few minutes for years: it is read incrementally, only what
was appended since the last call, with the byte offset of each line kept (not the lines).
A line still being written (no newline yet) waits for the next call.
"""

from __future__ import annotations

from array import array
from pathlib import Path

from gmp_edge.integrity.anchors import anchors_path_for


class AnchorFeed:
    """The anchors file of a store, read as (line number, line) after a cursor."""

    def __init__(self, store_path: str | Path):
        self.path = anchors_path_for(store_path)
        self._starts = array("q")  # byte offset of each complete line
        self._end = 0  # bytes of the file indexed so far (complete lines only)

    def _index(self) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size < self._end:  # cut back or replaced: index again (verify names the damage)
            self._starts, self._end = array("q"), 0
        if size == self._end:
            return
        with self.path.open("rb") as f:
            f.seek(self._end)
            fresh = f.read(size - self._end)
        at = 0
        while (nl := fresh.find(b"\n", at)) >= 0:
            self._starts.append(self._end + at)
            at = nl + 1
        self._end += at

    def last_line(self) -> int:
        """The number of complete lines in the file now."""
        self._index()
        return len(self._starts)

    def after(self, cursor: int, limit: int) -> list[tuple[int, str]]:
        """Up to ``limit`` non-blank lines after line ``cursor``, oldest first, without the
        newline."""
        self._index()
        out: list[tuple[int, str]] = []
        if cursor >= len(self._starts) or limit <= 0:
            return out
        with self.path.open("rb") as f:
            f.seek(self._starts[max(cursor, 0)])
            for n in range(max(cursor, 0) + 1, len(self._starts) + 1):
                raw = f.readline()
                text = raw.decode("utf-8", errors="replace").strip()
                if text:
                    out.append((n, text))
                    if len(out) == limit:
                        break
        return out
