"""Particle-counter record decoding and the concentration math."""

import struct

import pytest

from gmp_edge.collector.codec import Order
from gmp_edge.collector.particle import (
    RECORD_REGISTERS,
    SETTINGS_COUNT,
    CounterSettings,
    analog_value,
    concentration,
    decode_record,
    decode_settings,
    sample_volume_m3,
)
from gmp_edge.collector.reading import Quality


def u32(v):
    return [(v >> 16) & 0xFFFF, v & 0xFFFF]


def record_words(ts=1_790_000_000, sample=60, status=0, counts=(5660, 1000, 100, 57), temp=21.5):
    w = u32(ts) + u32(sample) + u32(3) + u32(status)
    ch = list(counts) + [0] * (16 - len(counts))
    for c in ch:
        w += u32(c)
    hi, lo = struct.unpack(">HH", struct.pack(">f", temp))
    analog = [lo, hi] + [0, 0] * 15  # low word first
    w += analog
    w += [0b11, 0b1111, 0, 0]
    assert len(w) == RECORD_REGISTERS
    return w


def test_volume_one_cubic_foot():
    assert sample_volume_m3(1.0, 60) == pytest.approx(0.0283168, rel=1e-5)


def test_decode_record_fields():
    rec = decode_record(record_words(), Order.LITTLE)
    assert rec.timestamp_s == 1_790_000_000
    assert rec.sample_time_s == 60
    assert rec.location == 3
    assert rec.counts[:4] == (5660, 1000, 100, 57)
    assert rec.analog[0] == pytest.approx(21.5)


def test_decode_record_wrong_length():
    with pytest.raises(ValueError, match="76"):
        decode_record([0] * 10, Order.LITTLE)


def test_settings():
    w = [100, 42, 0xFFFF, 3, 0, 0, 0, 0, 0, 0, 0, 60]
    assert len(w) == SETTINGS_COUNT
    assert decode_settings(w) == CounterSettings(1.0, 42, 0xFFFF, 60)


@pytest.mark.parametrize(
    ("status", "quality", "text"),
    [
        (0x00, Quality.GOOD, None),
        (0x01, Quality.UNCERTAIN, "laser alert"),
        (0x02, Quality.UNCERTAIN, "flow alert"),
        (0x04, Quality.UNCERTAIN, "lower bound"),
        (0x08, Quality.UNCERTAIN, "service"),
        (0x10, Quality.GOOD, None),  # threshold high is the device's own alarm, not a data fault
        (0x40, Quality.BAD, "sampler error"),
        (0x46, Quality.BAD, "sampler error"),
    ],
)
def test_concentration_quality_from_status(status, quality, text):
    rec = decode_record(record_words(status=status), Order.LITTLE)
    a = concentration(rec, 1, 1.0)
    assert a.quality is quality
    assert a.value == pytest.approx(5660 / 0.0283168, rel=1e-4)  # value kept in every case
    if text:
        assert text in (a.message or "")


def test_zero_flow_is_bad_with_raw_count():
    rec = decode_record(record_words(), Order.LITTLE)
    a = concentration(rec, 4, 0.0)
    assert a.quality is Quality.BAD and a.value is None
    assert "raw count 57" in (a.message or "")


def test_analog_nan_is_bad():
    rec = decode_record(record_words(temp=float("nan")), Order.LITTLE)
    assert analog_value(rec, 1).quality is Quality.BAD
    assert analog_value(rec, 1).value is None
