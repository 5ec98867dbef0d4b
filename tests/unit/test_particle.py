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
    not_sampling,
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


def test_settings_carry_the_counters_clock_and_its_cycle():
    # 40027-28 real-time clock, 40031-32 hold time, 40033-34 sample time (high word first)
    rtc = 1_795_000_000
    w = [100, 42, 0xFFFF, 3, rtc >> 16, rtc & 0xFFFF, 0, 0, 0, 54, 0, 6]
    s = decode_settings(w)
    assert (s.rtc_s, s.hold_time_s, s.sample_time_s, s.cycle_s) == (rtc, 54, 6, 60)


NEWEST = 1_795_000_000  # 2026-11-18T11:06:40Z
NOT_SAMPLING = [
    # (newest record, overdue s, hold, sample, missed cycles, message or None)
    (NEWEST, 17.9, 0, 6, 3, None),  # within 3 cycles of 6 s
    (NEWEST, 18.0, 0, 6, 3, None),  # exactly 3 cycles: not yet
    (
        NEWEST,
        18.5,
        0,
        6,
        3,
        "counter not sampling: newest record 2026-11-18T11:06:40Z, 18.5 s ago; "
        "one is due every 6 s (hold 0 s + sample 6 s)",
    ),
    (NEWEST, 150.0, 54, 6, 3, None),  # a record a minute: 150 s is 2.5 cycles
    (
        NEWEST,
        864_000.0,
        54,
        6,
        1,
        "counter not sampling: newest record 2026-11-18T11:06:40Z, 10 d ago; "
        "one is due every 60 s (hold 54 s + sample 6 s)",
    ),
    (
        None,
        200.0,
        0,
        60,
        3,
        "counter not sampling: no record stored in 3 min 20 s; "
        "one is due every 60 s (hold 0 s + sample 60 s)",
    ),
    (NEWEST, 10**9, 0, 0, 3, None),  # no cycle known: never judged
]


@pytest.mark.parametrize(("newest", "overdue", "hold", "sample", "k", "want"), NOT_SAMPLING)
def test_not_sampling(newest, overdue, hold, sample, k, want):
    s = CounterSettings(1.0, 1, 0xFFFF, sample, rtc_s=0, hold_time_s=hold)
    assert not_sampling(newest, overdue, s, k) == want


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
