"""Pure decoding of particle-counter sample records (Lighthouse REMOTE/Apex register map).

A record holds cumulative raw counts per channel for one sample; the monitoring
value is a concentration, particles per cubic metre of sampled air.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from gmp_edge.collector.codec import DecodeError, Order, normalise
from gmp_edge.collector.reading import Cause, Quality
from gmp_edge.numfmt import duration
from gmp_edge.timefmt import iso

CUBIC_FEET_TO_M3 = 0.028316846592
RECORD_REGISTERS = 76  # input registers 30001..30076 in the manual's numbering
SETTINGS_ADDRESS = 22  # holding 40023 (flow) .. 40034 (sample time), PDU addresses
SETTINGS_COUNT = 12
RECORD_INDEX_ADDRESS = 24  # holding 40025: selects the record shown in the input registers
LAST_RECORD = 0xFFFF
SMALLEST_NORMAL = 1.1754943508222875e-38  # float32: smaller non-zero values are subnormal

# Data-status bits (low byte of 30007-30008)
LASER_ALERT, FLOW_ALERT, OVERFLOW, SERVICE, THRESHOLD_HIGH, THRESHOLD_LOW, SAMPLER_ERROR = (
    1 << i for i in range(7)
)


@dataclass(frozen=True, slots=True)
class CounterSettings:
    """The holding registers the collector needs from a counter: flow, record count, its
    clock and its sampling cycle."""

    flow_cfm: float
    record_count: int
    record_index: int
    sample_time_s: int
    rtc_s: int = 0  # the counter's clock, seconds since 1970 (40027-40028)
    hold_time_s: int = 0  # pause between samples (40031-40032)

    @property
    def cycle_s(self) -> int:
        """Seconds from one record to the next while the counter samples: hold + sample."""
        return self.hold_time_s + self.sample_time_s


@dataclass(frozen=True, slots=True)
class SampleRecord:
    """One stored sample: end time, duration, status and raw channel counts."""

    timestamp_s: int
    sample_time_s: int
    location: int
    status: int
    counts: tuple[int, ...]  # 16 channels, cumulative raw counts
    analog: tuple[float, ...]  # 16 analog channels


def _u32(words: Sequence[int], at: int) -> int:
    return int(struct.unpack(">I", normalise(words[at : at + 2]))[0])


def _s32(words: Sequence[int], at: int) -> int:
    return int(struct.unpack(">i", normalise(words[at : at + 2]))[0])


def decode_settings(words: Sequence[int]) -> CounterSettings:
    """Holding registers 22..33 (40023..40034) to settings."""
    if len(words) != SETTINGS_COUNT:
        raise DecodeError(f"settings need {SETTINGS_COUNT} registers, got {len(words)}")
    return CounterSettings(
        flow_cfm=words[0] / 100.0,
        record_count=words[1],
        record_index=words[2],
        sample_time_s=_u32(words, 10),
        rtc_s=_s32(words, 4),
        hold_time_s=_u32(words, 8),
    )


def decode_record(words: Sequence[int], float_word_order: Order) -> SampleRecord:
    """Input registers 0..75 of the selected record to a :class:`SampleRecord`.

    Integers are high word first; the analog floats' word order depends on the
    model (REMOTE and Solair: low word first), so the caller gives it (the device's
    configured ``float_word_order``).
    """
    if len(words) != RECORD_REGISTERS:
        raise DecodeError(f"a record needs {RECORD_REGISTERS} registers, got {len(words)}")
    counts = tuple(_u32(words, 8 + 2 * i) for i in range(16))
    analog = tuple(
        float(struct.unpack(">f", normalise(words[40 + 2 * i : 42 + 2 * i], float_word_order))[0])
        for i in range(16)
    )
    return SampleRecord(
        timestamp_s=_s32(words, 0),
        sample_time_s=_u32(words, 2),
        location=_s32(words, 4),
        status=_u32(words, 6) & 0xFF,
        counts=counts,
        analog=analog,
    )


def sample_volume_m3(flow_cfm: float, sample_time_s: float) -> float:
    """Air drawn during one sample, in cubic metres."""
    return flow_cfm * sample_time_s / 60.0 * CUBIC_FEET_TO_M3


@dataclass(frozen=True, slots=True)
class Assessed:
    """A record channel turned into a value with quality."""

    value: float | None
    quality: Quality
    message: str | None
    cause: Cause | None


def concentration(record: SampleRecord, channel: int, flow_cfm: float) -> Assessed:
    """Particles per m³ on ``channel`` (1-based), with quality from the record status.

    A zero sample volume gives Bad (no value can be computed). Laser, flow and
    service alerts keep the value but mark it Uncertain; an overflow means the
    count is a lower bound (Uncertain, said so); a sampler error is Bad with the
    value kept so the reviewer sees what the device reported.
    """
    counts = record.counts[channel - 1]
    volume = sample_volume_m3(flow_cfm, record.sample_time_s)
    if volume <= 0:
        return Assessed(
            None,
            Quality.BAD,
            f"zero sample volume (flow {flow_cfm} CFM, sample {record.sample_time_s} s); "
            f"raw count {counts}",
            Cause.DEVICE,
        )
    value = counts / volume
    return _with_status(value, record.status, f"raw count {counts}")


def analog_value(record: SampleRecord, channel: int) -> Assessed:
    """Analog channel (1-based) of a record, with quality from the record status."""
    value = record.analog[channel - 1]
    if value != value or value in (float("inf"), float("-inf")):
        return Assessed(None, Quality.BAD, f"analog channel {channel} is {value}", Cause.DEVICE)
    if value != 0.0 and abs(value) < SMALLEST_NORMAL:
        # no sensor reads 1e-41: the two words of the float were taken in the wrong order
        return Assessed(
            value,
            Quality.BAD,
            f"analog channel {channel} decodes to {value:g}, a subnormal float: "
            "the device's float_word_order is not the configured one",
            Cause.COLLECTOR,
        )
    return _with_status(value, record.status & ~OVERFLOW, f"analog channel {channel}")


def in_sensor_range(a: Assessed, lo: float | None, hi: float | None) -> Assessed:
    """``a`` made Bad (value kept, said why) when its value lies outside the tag's sensor
    range ``[lo, hi]``: a record value beyond what the sensor can measure is not Good, be it
    a probe fault or a float decoded in the wrong word order."""
    v = a.value
    if v is None or a.quality is Quality.BAD:
        return a
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        note = f"{v:g} outside the sensor range [{lo}, {hi}]"
        return Assessed(v, Quality.BAD, f"{note}; {a.message}" if a.message else note, Cause.DEVICE)
    return a


def _with_status(value: float, status: int, what: str) -> Assessed:
    if status & SAMPLER_ERROR:
        return Assessed(
            value, Quality.BAD, f"sampler error (status 0x{status:02X}); {what}", Cause.DEVICE
        )
    notes = []
    if status & OVERFLOW:
        notes.append("particle overflow: the count is a lower bound")
    if status & LASER_ALERT:
        notes.append("laser alert")
    if status & FLOW_ALERT:
        notes.append("flow alert")
    if status & SERVICE:
        notes.append("instrument service due")
    if notes:
        return Assessed(
            value,
            Quality.UNCERTAIN,
            f"{'; '.join(notes)} (status 0x{status:02X}); {what}",
            Cause.DEVICE,
        )
    return Assessed(value, Quality.GOOD, None, None)


def record_time(epoch_s: int) -> str:
    """A record's whole-second timestamp as ISO 8601 UTC: ``2026-11-22T09:33:20Z``."""
    return iso(epoch_s * 1_000_000).replace(".000000Z", "Z")


def not_sampling(
    newest_s: int | None, overdue_s: float, settings: CounterSettings, missed_cycles: int
) -> str | None:
    """Why a counter whose newest record closed at ``newest_s`` (None: it holds none)
    ``overdue_s`` seconds ago by the collector's clock counts as stopped, or None while it
    is within ``missed_cycles`` of its own cycle (a cycle of 0: not known, never judged)."""
    cycle = settings.cycle_s
    if cycle <= 0 or overdue_s <= missed_cycles * cycle:
        return None
    age = duration(overdue_s * 1e6)
    newest = (
        f"no record stored in {age}; "
        if newest_s is None
        else f"newest record {record_time(newest_s)}, {age} ago; "
    )
    return (
        f"counter not sampling: {newest}"
        f"one is due every {cycle} s (hold {settings.hold_time_s} s + sample "
        f"{settings.sample_time_s} s)"
    )
