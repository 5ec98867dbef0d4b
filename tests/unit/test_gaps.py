"""Gap tracking from the reading stream."""

from gmp_edge.collector.reading import Cause, Quality, Reading
from gmp_edge.historian.gaps import GapClosed, GapOpened, GapTracker


def r(tag, ts, q, cause=None):
    return Reading(
        tag, None if q is Quality.BAD else 1.0, q, ts, None, "m" if cause else None, cause
    )


def test_transitions_table():
    g = GapTracker()
    seq = [
        (r("a", 1, Quality.GOOD), []),
        (r("a", 2, Quality.BAD, Cause.NETWORK), [GapOpened("a", 2, Cause.NETWORK, "m")]),
        (r("a", 3, Quality.BAD, Cause.NETWORK), []),  # still in the same gap
        (r("b", 3, Quality.UNCERTAIN), []),
        (r("a", 4, Quality.UNCERTAIN), [GapClosed("a", 4)]),  # a value again
        (r("a", 5, Quality.BAD, Cause.DEVICE), [GapOpened("a", 5, Cause.DEVICE, "m")]),
        (r("a", 6, Quality.GOOD), [GapClosed("a", 6)]),
    ]
    for reading, expected in seq:
        assert g.observe([reading]) == expected


def test_bad_without_cause_is_collector():
    g = GapTracker()
    (ev,) = g.observe([Reading("x", None, Quality.BAD, 7)])
    assert isinstance(ev, GapOpened) and ev.cause is Cause.COLLECTOR


def test_initial_open_tags():
    g = GapTracker(["a"])
    assert g.observe([r("a", 1, Quality.GOOD)]) == [GapClosed("a", 1)]
    assert g.open_tags == frozenset()
