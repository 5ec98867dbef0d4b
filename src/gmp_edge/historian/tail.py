"""Which tag each recently committed reading belongs to, by reading id (ADR 0029).

The readings table has no per-tag index, so a per-tag read finds the readings not folded
into the segments yet (about the last 75 s) by scanning their rowid range: 25-50 ms at
10,000-20,000 tags, for every trend and raw query. The store's one writer knows, for each
commit, the tag id of every row it inserted (a commit's rows have consecutive ids), so it
keeps them here, 4 bytes a reading; a reader in the same process turns "the tail of these
tags" into the ids to read by primary key instead of a scan. Derived and in memory only:
whatever it does not cover (the previous run's rows, a commit it was not told of) the
reader still scans, and the rows themselves always come from the table.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

#: Readings held at most (20,000 tags for ~4 minutes; 16 MB); beyond, the oldest go.
MAX_READINGS = 4_000_000


@dataclass(frozen=True, slots=True)
class _Commit:
    first: int  # id of its first reading; the i-th has id first + i
    tids: np.ndarray  # int32 tag id of each reading, in id order

    @property
    def last(self) -> int:
        return self.first + int(self.tids.size) - 1


class TailIndex:
    """Tag ids of the readings of recent commits, for ids after the segment cursor."""

    def __init__(self, max_readings: int = MAX_READINGS) -> None:
        self._commits: deque[_Commit] = deque()
        self._held = 0
        self._max = max_readings
        self._lock = threading.Lock()  # the committer adds, the indexer drops, readers copy

    def add(self, first: int, tids: Collection[int]) -> None:
        """A commit's readings ``first, first + 1, ...`` are of tags ``tids``, in order. A
        commit that does not follow the last one held starts the index anew."""
        arr = np.fromiter(tids, dtype=np.int32, count=len(tids))
        if arr.size == 0:
            return
        with self._lock:
            if self._commits and self._commits[-1].last + 1 != first:
                self._commits.clear()
                self._held = 0
            self._commits.append(_Commit(first, arr))
            self._held += int(arr.size)
            while self._held > self._max and len(self._commits) > 1:
                self._held -= int(self._commits.popleft().tids.size)

    def folded_through(self, cursor: int) -> None:
        """The segments hold every reading up to id ``cursor``: those are not needed."""
        with self._lock:
            while self._commits and self._commits[0].last <= cursor:
                self._held -= int(self._commits.popleft().tids.size)

    def clear(self) -> None:
        """Forget everything (retention deleted readings)."""
        with self._lock:
            self._commits.clear()
            self._held = 0

    def find(
        self, tids: Collection[int], after: int, newest: int
    ) -> tuple[np.ndarray, int, int] | None:
        """(ids of the readings of ``tids`` in ``[lo, hi]``, lo, hi): the part of
        ``(after, newest]`` this index covers, which starts at ``after + 1`` or later and
        is one run of ids; None when it covers none of it."""
        with self._lock:
            commits = list(self._commits)
        commits = [c for c in commits if c.last > after and c.first <= newest]
        if not commits:
            return None
        want = np.fromiter(tids, dtype=np.int64, count=len(tids))
        lo = max(commits[0].first, after + 1)
        hi = min(commits[-1].last, newest)
        found = []
        for c in commits:
            hit = c.tids == want[0] if want.size == 1 else np.isin(c.tids, want)
            ids = np.flatnonzero(hit) + c.first
            found.append(ids[(ids >= lo) & (ids <= hi)])
        return np.concatenate(found), lo, hi
