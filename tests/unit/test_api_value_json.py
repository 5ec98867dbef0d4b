"""/api/latest answers every tag without building a model per reading: the fast path must
write exactly what the declared model (ValueOut) would."""

from __future__ import annotations

import json
import math

import pytest

from gmp_edge.api.app import ValueOut, _value, _value_dict
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
