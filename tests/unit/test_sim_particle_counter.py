"""Particle counter model: records ring, index selection, cumulative channels, commands."""

from __future__ import annotations

import random
from typing import TypedDict

import pytest

from gmp_edge.simulators import encoding as enc
from gmp_edge.simulators.encoding import WordOrder
from gmp_edge.simulators.modbus_pdu import ExceptionCode
from gmp_edge.simulators.particle_counter import (
    LAST_RECORD,
    STATUS_NEW_DATA,
    STATUS_RUNNING,
    ParticleCounter,
    channel_concentrations,
    sampled_volume_m3,
)
from gmp_edge.simulators.scenario import TargetEffects
from gmp_edge.simulators.spec import ParticleCounterParams

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def make(capacity: int = 5, sample_s: int = 10, **kw: float) -> ParticleCounter:
    params = ParticleCounterParams(sample_time_s=sample_s, record_capacity=capacity, **kw)  # type: ignore[arg-type]
    return ParticleCounter(params, random.Random(1), T0)


def run(
    pc: ParticleCounter, seconds: float, step: float = 0.5, effects: TargetEffects | None = None
) -> None:
    start: float = getattr(pc, "test_clock", T0)  # wall time of this device under test
    n = round(seconds / step)
    for i in range(1, n + 1):
        pc.tick(start + i * step, effects or TargetEffects())
    pc.test_clock = start + n * step  # type: ignore[attr-defined]


def holding(pc: ParticleCounter, address: int, count: int = 1) -> list[int]:
    words = pc.read(3, address, count)
    assert isinstance(words, list)
    return words


class Record(TypedDict):
    """The current record (input registers 0-75), decoded."""

    timestamp: int
    sample_time: int
    location: int
    status: int
    counts: list[int]
    temperature: float
    rh: float
    other_analog: list[float]
    masks: list[int]


def record(pc: ParticleCounter) -> Record:
    words = pc.read(4, 0, 76)
    assert isinstance(words, list)
    return {
        "timestamp": enc.decode_s32(words[0:2]),
        "sample_time": enc.decode_u32(words[2:4]),
        "location": enc.decode_s32(words[4:6]),
        "status": enc.decode_u32(words[6:8]),
        "counts": [enc.decode_u32(words[8 + 2 * i : 10 + 2 * i]) for i in range(16)],
        "temperature": enc.decode_f32(words[40:42], WordOrder.CDAB),
        "rh": enc.decode_f32(words[42:44], WordOrder.CDAB),
        "other_analog": [
            enc.decode_f32(words[44 + 2 * i : 46 + 2 * i], WordOrder.CDAB) for i in range(14)
        ],
        "masks": words[72:76],
    }


def select(pc: ParticleCounter, index: int) -> None:
    assert pc.write(24, [index]) is None


def test_identity_registers() -> None:
    pc = make()
    words = holding(pc, 0, 28)
    assert words[0] == 150
    assert words[1] == 0
    assert words[3] == 210
    assert enc.decode_u32(words[4:6]) == 51_040_001
    assert enc.decode_ascii(words[6:14]) == "REMOTE 5104P"
    assert enc.decode_ascii(words[14:22]) == "5104P"
    assert words[22] == 100  # 1.00 CFM
    assert words[23] == 0
    assert words[24] == LAST_RECORD
    assert words[25] == 1
    assert enc.decode_s32(words[26:28]) == int(T0)
    assert enc.decode_u32(holding(pc, 32, 2)) == 10
    assert enc.decode_s32(holding(pc, 46, 2)) > T0
    assert pc.read(3, 36, 1) == ExceptionCode.ILLEGAL_DATA_ADDRESS
    assert pc.read(3, 0, 48) == ExceptionCode.ILLEGAL_DATA_ADDRESS  # 36..45 unmapped
    assert pc.read(4, 76, 1) == ExceptionCode.ILLEGAL_DATA_ADDRESS


def test_records_every_sample_time_with_end_timestamp() -> None:
    pc = make(sample_s=10)
    run(pc, 9.5)
    assert holding(pc, 23) == [0]
    run(pc, 0.5)
    assert holding(pc, 23) == [1]
    rec = record(pc)
    assert rec["timestamp"] == int(T0) + 10  # END of the sample
    assert rec["sample_time"] == 10
    assert rec["location"] == 1
    assert rec["status"] == 0
    run(pc, 25)
    assert holding(pc, 23) == [3]


def test_cumulative_channels_are_ordered_and_plausible() -> None:
    pc = make(capacity=100, sample_s=60, conc_0_5=150_000.0, conc_5_0=900.0)
    run(pc, 60 * 50, step=5)
    assert len(pc.records) == 50
    volume = sampled_volume_m3(1.0, 60)
    means = [sum(r.counts[i] for r in pc.records) / 50 for i in range(4)]
    for r in pc.records:
        assert r.counts[0] >= r.counts[1] >= r.counts[2] >= r.counts[3] >= 0
    expected = channel_concentrations(pc.params)
    for mean, conc in zip(means, expected, strict=True):
        assert mean == pytest.approx(conc * volume, rel=0.35)  # slow drift + Poisson noise
    rec = record(pc)
    assert rec["counts"][4:] == [0] * 12
    assert rec["other_analog"] == [0.0] * 14
    assert rec["masks"] == [0b11, 0b1111, 0, 0]
    assert 19 < rec["temperature"] < 23
    assert 30 < rec["rh"] < 60


def test_ring_drops_oldest_and_indices_shift() -> None:
    pc = make(capacity=3, sample_s=10)
    run(pc, 30)
    stamps = [r.timestamp for r in pc.records]
    assert stamps == [int(T0) + 10, int(T0) + 20, int(T0) + 30]
    select(pc, 1)
    assert record(pc)["timestamp"] == int(T0) + 20
    run(pc, 10)  # a fourth record: the oldest goes, index 1 now shows the former index 2
    assert holding(pc, 23) == [3]
    assert record(pc)["timestamp"] == int(T0) + 30
    select(pc, 0)
    assert record(pc)["timestamp"] == int(T0) + 20
    assert holding(pc, 24) == [0]  # reads back what was written


def test_last_record_selection_and_missing_index() -> None:
    pc = make(capacity=10, sample_s=10)
    assert record(pc)["timestamp"] == 0  # nothing recorded yet: an all-zero record
    run(pc, 40)
    select(pc, LAST_RECORD)
    assert record(pc)["timestamp"] == int(T0) + 40
    assert holding(pc, 24) == [0xFFFF]
    select(pc, 4)  # only 0..3 exist
    rec = record(pc)
    assert rec["timestamp"] == 0 and rec["masks"] == [0, 0, 0, 0]


def test_new_data_bit_cleared_by_reading_a_record() -> None:
    pc = make(sample_s=10)
    assert holding(pc, 2) == [0b0011]  # RUNNING | SAMPLING
    run(pc, 10)
    assert holding(pc, 2)[0] & STATUS_NEW_DATA
    pc.read(4, 0, 2)
    assert not holding(pc, 2)[0] & STATUS_NEW_DATA


def test_commands_stop_start_clear() -> None:
    pc = make(sample_s=10)
    run(pc, 20)
    assert pc.write(1, [12]) is None  # stop
    assert holding(pc, 1) == [0]  # the command register always reads 0
    assert not holding(pc, 2)[0] & STATUS_RUNNING
    run(pc, 30)
    assert holding(pc, 23) == [2]
    assert pc.write(1, [3]) is None  # clear buffer
    assert holding(pc, 23) == [0]
    assert pc.write(1, [11]) is None  # start: a new sample begins now
    run(pc, 10)
    assert holding(pc, 23) == [1]
    assert pc.write(1, [2]) == ExceptionCode.ILLEGAL_DATA_VALUE
    assert pc.write(0, [1]) == ExceptionCode.ILLEGAL_DATA_ADDRESS  # read-only
    assert pc.write(23, [1]) == ExceptionCode.ILLEGAL_DATA_ADDRESS


def test_sample_time_and_location_writes() -> None:
    pc = make(sample_s=10)
    assert pc.write(33, [5]) is None  # low word only
    assert enc.decode_u32(holding(pc, 32, 2)) == 5
    assert pc.write(32, [2, 0]) == ExceptionCode.ILLEGAL_DATA_VALUE  # 131072 s > 86399
    assert pc.write(25, [0]) == ExceptionCode.ILLEGAL_DATA_VALUE
    assert pc.write(25, [7]) is None
    run(pc, 5)
    assert record(pc)["location"] == 7
    assert record(pc)["sample_time"] == 5


def test_particle_burst_raises_counts() -> None:
    quiet, burst = make(sample_s=60), make(sample_s=60)
    run(quiet, 60, step=5)
    run(burst, 60, step=5, effects=TargetEffects(particle_factor=20))
    assert burst.records[-1].counts[0] > 10 * quiet.records[-1].counts[0]


def test_frozen_counter_stores_nothing_and_does_not_backfill() -> None:
    pc = make(sample_s=10)
    run(pc, 10)
    run(pc, 60, effects=TargetEffects(frozen=True))
    assert len(pc.records) == 1
    run(pc, 10)  # the first tick after the freeze (t+0.5) starts a fresh sample
    assert len(pc.records) == 1
    run(pc, 0.5)
    assert len(pc.records) == 2


def test_garbage_on_float_and_int_registers() -> None:
    pc = make(sample_s=10)
    run(pc, 10)
    run(pc, 0.5, effects=TargetEffects(garbage_registers=frozenset({8, 40})))
    words = pc.read(4, 8, 2)
    assert words == [0x8000, 0x8000]
    assert pc.read(4, 40, 2) == [0x0000, 0x7FC0]  # NaN, low word first


def test_same_seed_same_records() -> None:
    a, b = make(sample_s=10), make(sample_s=10)
    run(a, 50)
    run(b, 50)
    assert list(a.records) == list(b.records)
