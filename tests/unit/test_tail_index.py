"""The writer's tail index: which tag each recent reading id is (historian/tail.py)."""

import numpy as np
import pytest

from gmp_edge.historian.tail import TailIndex


def _found(index, tids, after, newest):
    got = index.find(tids, after, newest)
    return None if got is None else (got[0].tolist(), got[1], got[2])


@pytest.mark.parametrize(
    ("tids", "after", "newest", "want"),
    [
        ([7], 0, 100, ([1, 3, 6], 1, 6)),
        ([7, 8], 0, 100, ([1, 2, 3, 4, 6], 1, 6)),
        ([7], 1, 100, ([3, 6], 2, 6)),  # after the cursor only
        ([7], 0, 4, ([1, 3], 1, 4)),  # up to the newest of the reader's snapshot
        ([9], 0, 100, ([], 1, 6)),  # covered, none of that tag
        ([7], 6, 100, None),  # nothing after the cursor held
        ([7], 0, 0, None),
    ],
)
def test_find_table(tids, after, newest, want):
    index = TailIndex()
    index.add(1, [7, 8, 7])  # ids 1, 2, 3
    index.add(4, [8, 5, 7])  # ids 4, 5, 6
    assert _found(index, tids, after, newest) == want


def test_a_commit_that_does_not_follow_starts_anew():
    index = TailIndex()
    index.add(1, [7, 8])
    index.add(10, [7])  # ids 3..9 were written by someone else: not covered
    assert _found(index, [7], 0, 100) == ([10], 10, 10)


def test_folded_commits_and_old_ones_beyond_the_bound_go():
    index = TailIndex(max_readings=4)
    index.add(1, [1, 2])
    index.add(3, [1, 2])
    index.folded_through(2)
    assert _found(index, [1], 0, 100) == ([3], 3, 4)
    index.add(5, [1, 2])
    index.add(7, [1, 2])  # 6 held: over the bound, the oldest commit goes
    assert _found(index, [1], 0, 100) == ([5, 7], 5, 8)
    index.clear()
    assert index.find([1], 0, 100) is None


def test_empty_commits_are_not_held():
    index = TailIndex()
    index.add(1, np.zeros(0, dtype=np.int32))
    assert index.find([1], 0, 100) is None
