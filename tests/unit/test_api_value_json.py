"""/api/latest answers every tag without building a model per reading: the fast path must
write exactly what the declared model (ValueOut) would."""

from __future__ import annotations

import json
import math

import pytest

from gmp_edge.api.app import ValueOut, _value
from gmp_edge.api.live_json import value_dict as _value_dict
from gmp_edge.collector.reading import Cause, Quality, Reading
from gmp_edge.historian.store import StoredReading

T = 1_790_000_000_123_456
TAG = "acme/solid-dose/compression/press-01/force"

CASES = [
    Reading(TAG, 21.5, Quality.GOOD, T),
    Reading(TAG, 3, Quality.GOOD, T),  # an int: ValueOut has it as a float
    Reading(TAG, "B-2026-0001 \u2713", Quality.GOOD, T, ts_source_us=T - 5),
    Reading(TAG, math.nan, Quality.UNCERTAIN, T, message="NaN from the device"),
    Reading(TAG, math.inf, Quality.BAD, T, message="overflow", cause=Cause.DEVICE),
    Reading.bad(TAG, T, "FC04 0+2: no answer\nwithin 1 s", Cause.NETWORK),
    StoredReading(TAG, T, T + 1, None, 19.25, Quality.GOOD, None, None),
    StoredReading(TAG, T, T, T - 9, None, Quality.BAD, "timed out", "network"),
]


@pytest.mark.parametrize("reading", CASES, ids=range(len(CASES)))
def test_the_fast_path_writes_what_the_model_writes(reading) -> None:
    model = json.loads(ValueOut.model_validate(_value(reading)).model_dump_json())
    assert _value_dict(reading) == model
    assert json.loads(json.dumps(_value_dict(reading), allow_nan=False)) == model


def test_live_answers_are_what_their_models_write(tmp_path) -> None:
    # /api/latest and /api/status/rooms write each tag's value text once per reading
    # (api.live_json); the answers must still be the declared models', also after a tag
    # has a newer reading
    from gmp_edge.api.app import RoomStatusOut
    from gmp_edge.identity.roles import Role
    from tests.apibox import ApiBox
    from tests.unit.conftest import small_plant

    box = ApiBox(tmp_path, small_plant().section("api", live_max_age_s=0))
    try:
        paths = [t.path for t in box.cfg.tags]
        live = box.service.latest
        for i, path in enumerate(paths):
            values: list[float | str | None] = [21.5, "x", math.nan, None]
            live[path] = Reading(path, values[i % 4], Quality(i % 3), T + i)
        viewer = box.machine("wall-screen", Role.VIEWER)

        def expected() -> list[dict]:
            return [
                json.loads(ValueOut.model_validate(_value(live[p])).model_dump_json())
                for p in sorted(paths)
            ]

        for _ in range(2):  # the second answer comes from the written texts
            assert viewer.get("/api/latest").json() == expected()
        live[paths[0]] = Reading(paths[0], 99.0, Quality.GOOD, T + 1000)
        assert viewer.get("/api/latest").json() == expected()
        rooms = viewer.get("/api/status/rooms").json()
        assert rooms, "no rooms"
        for room in rooms:
            model = RoomStatusOut.model_validate(room)
            want = [
                json.loads(ValueOut.model_validate(_value(live[t.path])).model_dump_json())
                for t in box.cfg.tags
                if t.segments[2] == model.room.id
            ]
            assert room["values"] == want
            assert room["tags"] == len(want)
        assert sum(len(r["values"]) for r in rooms) == len(paths)
    finally:
        box.close()


def test_a_shared_answer_is_made_again_only_when_older_than_its_age() -> None:
    from gmp_edge.api.live_json import SharedAnswer

    now = [100.0]
    made: list[str] = []

    def make() -> str:
        made.append(f"answer {len(made)}")
        return made[-1]

    shared = SharedAnswer(0.5, clock=lambda: now[0])
    assert shared.get(make) == "answer 0"
    now[0] += 0.5
    assert shared.get(make) == "answer 0"  # within its age: the same text
    now[0] += 0.01
    assert shared.get(make) == "answer 1"
    assert SharedAnswer(0).get(make) == "answer 2"  # 0: made every time
    assert SharedAnswer(0).get(make) == "answer 3"


def test_while_one_request_makes_the_answer_the_others_get_the_one_before() -> None:
    from gmp_edge.api.live_json import SharedAnswer

    now = [0.0]
    shared = SharedAnswer(0.5, clock=lambda: now[0])
    assert shared.get(lambda: "first") == "first"
    now[0] = 1.0
    seen = []

    def make() -> str:  # meanwhile another request asks: it is not kept waiting
        seen.append(shared.get(lambda: "never made"))
        return "second"

    assert shared.get(make) == "second"
    assert seen == ["first"]
    assert shared.get(lambda: "never made") == "second"


@pytest.mark.parametrize(
    ("header", "gzip"),
    [
        ("", False),
        ("gzip", True),
        ("gzip, deflate, br", True),
        ("br;q=1.0, gzip;q=0.5", True),
        ("gzip;q=0", False),
        ("GZIP", True),
        ("*", True),
        ("*;q=0", False),
        ("identity", False),
        ("gzip;q=oops", False),
        ("*, gzip;q=0", False),  # named beats the wildcard
    ],
)
def test_accept_encoding(header: str, gzip: bool) -> None:
    from gmp_edge.api.live_json import accepts_gzip

    assert accepts_gzip(header) is gzip


def test_live_answers_gzipped_for_who_accepts_it(tmp_path) -> None:
    from gmp_edge.identity.roles import Role
    from tests.apibox import ApiBox

    box = ApiBox(tmp_path)  # the default live_max_age_s: the answer is shared
    try:
        for path in [t.path for t in box.cfg.tags]:
            box.service.latest[path] = Reading(path, 1.5, Quality.GOOD, T)
        viewer = box.machine("wall-screen", Role.VIEWER)
        for route in ("/api/latest", "/api/status/rooms"):
            plain = viewer.get(route, headers={"Accept-Encoding": "identity"})
            packed = viewer.get(route, headers={"Accept-Encoding": "gzip"})
            assert "content-encoding" not in plain.headers
            assert packed.headers["content-encoding"] == "gzip"
            assert packed.headers["vary"] == "Accept-Encoding"
            assert packed.json() == plain.json()  # the client unpacks it
            assert int(packed.headers["content-length"]) < len(plain.content)
    finally:
        box.close()
