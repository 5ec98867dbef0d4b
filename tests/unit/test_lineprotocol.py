"""Line protocol encoding of readings and events: fields, escaping, numbers, replays."""

from __future__ import annotations

import math

import pytest

from gmp_edge.collector.reading import Cause, Quality
from gmp_edge.historian.lineprotocol import (
    TagMeta,
    encode_event,
    encode_reading,
    escape_measurement,
    escape_tag,
    format_float,
    meta_from_config,
    numeric_value,
    quote_string,
)
from gmp_edge.historian.store import StoredReading

from .conftest import STATE, TEMP, small_plant

T = 1_790_000_000_123_456  # us
NS = T * 1000
META = TagMeta("acme", "solid-dose", "granulation", "D", "trh-01", "temperature", "degC", "temp")
PREFIX = (
    "reading,area=solid-dose,equipment=trh-01,grade=D,kind=temp,room=granulation,"
    "site=acme,tag=temperature,unit=degC "
)


def sr(value, quality=Quality.GOOD, message=None, cause=None, ts=T):
    path = "acme/solid-dose/granulation/trh-01/temperature"
    return StoredReading(path, ts, ts, None, value, quality, message, cause)


# (value, quality, message, cause) -> fields part of the line
READINGS = [
    (21.5, Quality.GOOD, None, None, 'value=21.5,quality="good",quality_code=0i'),
    (21.0, Quality.GOOD, None, None, 'value=21.0,quality="good",quality_code=0i'),
    (0.0, Quality.GOOD, None, None, 'value=0.0,quality="good",quality_code=0i'),
    (-0.0, Quality.GOOD, None, None, 'value=-0.0,quality="good",quality_code=0i'),
    (21, Quality.GOOD, None, None, 'value=21.0,quality="good",quality_code=0i'),  # int -> float
    (True, Quality.GOOD, None, None, 'value=1.0,quality="good",quality_code=0i'),
    (1e16, Quality.GOOD, None, None, 'value=1e+16,quality="good",quality_code=0i'),
    (
        1.7976931348623157e308,
        Quality.GOOD,
        None,
        None,
        'value=1.7976931348623157e+308,quality="good",quality_code=0i',
    ),
    (5e-324, Quality.GOOD, None, None, 'value=5e-324,quality="good",quality_code=0i'),
    (-1.5e-300, Quality.GOOD, None, None, 'value=-1.5e-300,quality="good",quality_code=0i'),
    (10**400, Quality.BAD, None, None, 'quality="bad",quality_code=2i'),  # no float holds it
    (
        2**53 + 1,
        Quality.GOOD,
        None,
        None,
        'value=9007199254740992.0,quality="good",quality_code=0i',
    ),
    (
        math.nan,
        Quality.BAD,
        "NaN from device",
        "device",
        'quality="bad",quality_code=2i,message="NaN from device",cause="device"',
    ),
    (math.inf, Quality.GOOD, None, None, 'quality="good",quality_code=0i'),
    (-math.inf, Quality.UNCERTAIN, None, None, 'quality="uncertain",quality_code=1i'),
    (
        None,
        Quality.BAD,
        "FC03 0+2: no answer within 1 s",
        Cause.NETWORK,
        'quality="bad",quality_code=2i,message="FC03 0+2: no answer within 1 s",cause="network"',
    ),
    (None, Quality.BAD, None, None, 'quality="bad",quality_code=2i'),
    (
        3.25,
        Quality.UNCERTAIN,
        "above valid_max",
        None,
        'value=3.25,quality="uncertain",quality_code=1i,message="above valid_max"',
    ),
    (
        "B-2026-001",
        Quality.GOOD,
        None,
        None,
        'value_text="B-2026-001",quality="good",quality_code=0i',
    ),
    ("", Quality.GOOD, None, None, 'value_text="",quality="good",quality_code=0i'),
    (
        'say "hi"\\now',
        Quality.GOOD,
        None,
        None,
        'value_text="say \\"hi\\"\\\\now",quality="good",quality_code=0i',
    ),
    (
        "Prüfung µm °C ✓ 批次",
        Quality.GOOD,
        None,
        None,
        'value_text="Prüfung µm °C ✓ 批次",quality="good",quality_code=0i',
    ),
    ("a,b c=d", Quality.GOOD, None, None, 'value_text="a,b c=d",quality="good",quality_code=0i'),
    ("1.5", Quality.GOOD, None, None, 'value_text="1.5",quality="good",quality_code=0i'),
    (1.0, Quality.GOOD, "", None, 'value=1.0,quality="good",quality_code=0i,message=""'),
    (
        1.0,
        Quality.GOOD,
        "line1\nline2",
        None,
        'value=1.0,quality="good",quality_code=0i,message="line1\\\\nline2"',
    ),
    (
        None,
        Quality.BAD,
        "trailing \\",
        "collector",
        'quality="bad",quality_code=2i,message="trailing \\\\",cause="collector"',
    ),
]


@pytest.mark.parametrize(("value", "quality", "message", "cause", "fields"), READINGS)
def test_encode_reading_fields(value, quality, message, cause, fields):
    assert encode_reading(sr(value, quality, message, cause), META) == f"{PREFIX}{fields} {NS}"


def test_quality_from_store_int_is_accepted():
    line = encode_reading(sr(1.5, quality=Quality(1)), META)
    assert 'quality="uncertain",quality_code=1i' in line


def test_timestamp_is_microseconds_times_1000():
    assert encode_reading(sr(1.0, ts=0), META).endswith(" 0")
    assert encode_reading(sr(1.0, ts=1), META).endswith(" 1000")
    assert encode_reading(sr(1.0, ts=-1), META).endswith(" -1000")  # before 1970 is legal


def test_replay_gives_the_same_series_and_timestamp():
    """Idempotent overwrite: the same reading encodes to the same line, byte for byte."""
    a = encode_reading(sr(21.5), META)
    b = encode_reading(sr(21.5), META)
    c = encode_reading(sr(22.0), META)
    assert a == b
    assert a.rsplit(" ", 2)[0] == c.rsplit(" ", 2)[0]  # same series key
    assert a.rsplit(" ", 1)[1] == c.rsplit(" ", 1)[1]  # same timestamp


TAG_ESCAPES = [
    ("plain", "plain"),
    ("a,b", "a\\,b"),
    ("a b", "a\\ b"),
    ("a=b", "a\\=b"),
    ("a\\b", "a/b"),  # 1.x and 2.x read "\\" differently; a trailing one is unwritable
    ("trailing\\", "trailing/"),
    ("a\nb\rc\td", "a\\ b\\ c\\ d"),
    ('quote"s', 'quote"s'),  # quotes are literal in tags
    ("µm/s²", "µm/s²"),
    ("°C", "°C"),
    (",= \\", "\\,\\=\\ /"),
]


@pytest.mark.parametrize(("raw", "escaped"), TAG_ESCAPES)
def test_escape_tag(raw, escaped):
    assert escape_tag(raw) == escaped


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [("reading", "reading"), ("a,b", "a\\,b"), ("a b", "a\\ b"), ("a=b", "a=b"), ("a\\", "a/")],
)
def test_escape_measurement(raw, escaped):
    assert escape_measurement(raw) == escaped


@pytest.mark.parametrize(
    ("raw", "quoted"),
    [
        ("", '""'),
        ("x", '"x"'),
        ('"', '"\\""'),
        ("\\", '"\\\\"'),
        ('\\"', '"\\\\\\""'),
        ("a, b=c", '"a, b=c"'),
        ("✓", '"✓"'),
        ("a\nb\r\nc", '"a\\\\nb\\\\r\\\\nc"'),  # newlines as text: not portable
    ],
)
def test_quote_string(raw, quoted):
    assert quote_string(raw) == quoted


def test_tags_with_special_characters_and_empty_values():
    meta = TagMeta("acme site", "a,b", "r=1", "", "eq", "sig", "mg/tablet µ", "")
    line = encode_reading(sr(1.0), meta)
    assert line.startswith(
        "reading,area=a\\,b,equipment=eq,room=r\\=1,site=acme\\ site,tag=sig,"
        "unit=mg/tablet\\ µ value=1.0,"
    )
    assert "grade=" not in line and "kind=" not in line  # empty tag values are left out


@pytest.mark.parametrize(
    ("x", "text"),
    [(21.0, "21.0"), (21, "21.0"), (0.1, "0.1"), (1e300, "1e+300"), (-2.5e-7, "-2.5e-07")],
)
def test_format_float(x, text):
    assert format_float(x) == text


@pytest.mark.parametrize("x", [math.nan, math.inf, -math.inf])
def test_format_float_refuses_non_finite(x):
    with pytest.raises(ValueError):
        format_float(x)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1.5, 1.5), (2, 2.0), ("2", None), (None, None), (math.nan, None), (10**400, None)],
)
def test_numeric_value(value, expected):
    assert numeric_value(value) == expected


EVENTS = [
    (
        "alarm",
        {"room": "granulation", "tag": "temperature", "level": "action"},
        {"state": "unack", "value": 26.0, "limit": 25, "active": True},
        'alarm,level=action,room=granulation,tag=temperature state="unack",value=26.0,'
        "limit=25i,active=true",
    ),
    (
        "deviation",
        {},
        {"id": "DEV-1", "class": "major", "batches": 0},
        'deviation id="DEV-1",class="major",batches=0i',
    ),
    ("a b,c", {"k k": "v,v", "e": ""}, {"f=f": -1.5}, "a\\ b\\,c,k\\ k=v\\,v f\\=f=-1.5"),
    ("m", {}, {"x": None, "y": False}, "m y=false"),
    (
        "m",
        {},
        {"big": 2**63 - 1, "small": -(2**63)},
        "m big=9223372036854775807i,small=-9223372036854775808i",
    ),
    ("m", {}, {"s": 'he said "ok"\\'}, 'm s="he said \\"ok\\"\\\\"'),
]


@pytest.mark.parametrize(("measurement", "tags", "fields", "expected"), EVENTS)
def test_encode_event(measurement, tags, fields, expected):
    assert encode_event(measurement, tags, fields, T) == f"{expected} {NS}"


@pytest.mark.parametrize(
    ("measurement", "fields"),
    [
        ("m", {}),
        ("m", {"x": None}),
        ("", {"x": 1}),
        ("m", {"": 1}),
        ("m", {"x": math.nan}),
        ("m", {"x": math.inf}),
        ("m", {"x": 2**63}),
        ("m", {"x": -(2**63) - 1}),
    ],
)
def test_encode_event_refuses_what_line_protocol_cannot_carry(measurement, fields):
    with pytest.raises(ValueError):
        encode_event(measurement, {}, fields, T)


def test_encode_event_refuses_unknown_types():
    with pytest.raises(TypeError):
        encode_event("m", {}, {"x": [1, 2]}, T)  # type: ignore[dict-item]


def test_tag_meta_from_path():
    assert TagMeta.from_path("s/a/r/e/sig", "Pa", "dp", "C") == TagMeta(
        "s", "a", "r", "C", "e", "sig", "Pa", "dp"
    )
    assert TagMeta.from_path("s/a").signal == ""
    assert TagMeta.from_path("s/a/r/e/sig/extra").signal == "sig/extra"


def test_meta_from_config():
    cfg = small_plant().build()
    meta = meta_from_config(cfg)
    assert set(meta) == {t.path for t in cfg.tags}
    m = meta[TEMP]
    assert (m.site, m.area, m.room, m.equipment, m.signal) == (
        "acme",
        "solid-dose",
        "compression",
        "trh-01",
        "temperature",
    )
    assert m.grade == "D"
    assert m.kind == "temperature"
    assert m.unit == "degC"
    assert meta[STATE].unit == "" and meta[STATE].kind == "state"
