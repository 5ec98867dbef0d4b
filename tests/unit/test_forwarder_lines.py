"""The forwarder writes the commonest rows' lines straight from the table: the very lines
its encoder writes from the stored readings, for every kind of row."""

import math

import pytest

from gmp_edge.collector.reading import Cause, Quality, Reading
from gmp_edge.historian.forwarder import Forwarder, reading_encoder
from gmp_edge.historian.lineprotocol import TagMeta
from gmp_edge.historian.store import Store

S = 1_000_000
T0 = 1_790_000_000 * S
KNOWN = "acme/solid/r101/press-01/force"
GONE = "acme/solid/r102/trh-01/temperature"  # recorded, since removed from the config


class _NoSink:
    name = "none"

    async def send(self, lines):
        raise AssertionError("nothing is sent here")


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "s.db")
    s.register_tags([(KNOWN, "kN", "force", "press"), (GONE, "degC", "temperature", "trh")])
    yield s
    s.close()


def test_lines_from_rows_are_the_encoders_lines(store):
    readings = [
        Reading(KNOWN, 12.5, Quality.GOOD, T0),
        Reading(KNOWN, -0.0, Quality.GOOD, T0 + 1),
        Reading(KNOWN, 1e-300, Quality.GOOD, T0 + 2, T0 - S),  # a source timestamp
        Reading(KNOWN, 7, Quality.GOOD, T0 + 3),  # an int, stored as REAL
        Reading(KNOWN, 3.25, Quality.UNCERTAIN, T0 + 4),
        Reading(KNOWN, 3.25, Quality.GOOD, T0 + 5, None, "over range"),
        Reading(KNOWN, math.nan, Quality.GOOD, T0 + 6),  # kept as NULL
        Reading(KNOWN, math.inf, Quality.GOOD, T0 + 7),
        Reading(KNOWN, "B-17", Quality.GOOD, T0 + 8),
        Reading.bad(KNOWN, T0 + 9, 'no answer "x"\n', Cause.NETWORK),
        Reading(GONE, 21.0, Quality.GOOD, T0 + 10),
    ]
    store.commit(readings)
    encode = reading_encoder({KNOWN: TagMeta.from_path(KNOWN)})
    fwd = Forwarder(store, _NoSink(), encode, "influxdb")
    try:
        items = fwd._load(0)
        want = [encode(r) for _, r in store.readings_after(0)]
        assert [i.line for i in items] == want
        assert [(i.rowid, i.tag, i.ts_us) for i in items] == [
            (rid, r.tag, r.ts_us) for rid, r in store.readings_after(0)
        ]
        # and not by accident through the slow path only: the rows differ in kind
        assert sum('quality="good",quality_code=0i' in w and "message" not in w for w in want) >= 5
    finally:
        fwd.close()


def test_a_plain_callable_encoder_still_gets_every_reading(store):
    store.commit([Reading(KNOWN, 1.5, Quality.GOOD, T0), Reading(KNOWN, 2.5, Quality.GOOD, T0 + 1)])
    seen = []

    def encode(r):
        seen.append(r.value)
        return None if r.value == 1.5 else f"x v={r.value}"

    fwd = Forwarder(store, _NoSink(), encode, "influxdb")
    try:
        assert [i.line for i in fwd._load(0)] == [None, "x v=2.5"]
        assert seen == [1.5, 2.5]
    finally:
        fwd.close()
