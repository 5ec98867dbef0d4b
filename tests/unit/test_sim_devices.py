"""T/RH and DP transmitter register maps, and the tablet press model."""

from __future__ import annotations

import math
import random

import pytest

from gmp_edge.simulators import encoding as enc
from gmp_edge.simulators.dp_transmitter import DpTransmitter
from gmp_edge.simulators.encoding import WordOrder
from gmp_edge.simulators.modbus_pdu import ExceptionCode
from gmp_edge.simulators.physics import absolute_humidity_g_m3, dew_point_c, poisson
from gmp_edge.simulators.scenario import TargetEffects
from gmp_edge.simulators.spec import DpParams, PressParams, TrhParams
from gmp_edge.simulators.tablet_press import TabletPress
from gmp_edge.simulators.trh_transmitter import TrhTransmitter

T0 = 1_767_225_600.0


def regs(
    device: TrhTransmitter | DpTransmitter, function: int, address: int, count: int
) -> list[int]:
    words = device.read(function, address, count)
    assert isinstance(words, list), words
    return words


def test_trh_map_and_word_orders() -> None:
    trh = TrhTransmitter(TrhParams(temperature_c=21.0, rh_pct=40.0), random.Random(3), T0)
    trh.tick(T0 + 100.0)
    h = regs(trh, 3, 0, 8)
    rh = enc.decode_f32(h[0:2], WordOrder.CDAB)
    t = enc.decode_f32(h[2:4], WordOrder.CDAB)
    assert 20 < t < 22
    assert 35 < rh < 45
    assert enc.decode_f32(h[4:6], WordOrder.CDAB) == pytest.approx(dew_point_c(t, rh), abs=1e-4)
    assert enc.decode_f32(h[6:8], WordOrder.DCBA) == pytest.approx(
        absolute_humidity_g_m3(t, rh), abs=1e-4
    )
    assert enc.decode_u32(regs(trh, 3, 512, 2), WordOrder.CDAB) == 100
    assert enc.decode_ascii(regs(trh, 3, 768, 8)) == "HMT330 TRH"
    i = regs(trh, 4, 0, 3)
    assert enc.decode_s16(i[0:1]) == round(t * 100)
    assert i[1] == round(rh * 100)
    assert i[2] == 0
    for bad in [(3, 8, 1), (3, 511, 2), (3, 776, 1), (4, 3, 1)]:
        assert trh.read(*bad) == ExceptionCode.ILLEGAL_DATA_ADDRESS
    assert trh.write(0, [1]) == ExceptionCode.ILLEGAL_DATA_ADDRESS


def test_trh_negative_temperature_is_signed() -> None:
    trh = TrhTransmitter(TrhParams(temperature_c=-5.0, rh_pct=50.0), random.Random(1), T0)
    trh.tick(T0 + 1)
    assert -6 < enc.decode_s16(regs(trh, 4, 0, 1)) / 100 < -4


def test_temperature_excursion_heats_and_dries() -> None:
    base = TrhTransmitter(TrhParams(), random.Random(5), T0)
    hot = TrhTransmitter(TrhParams(), random.Random(5), T0)
    base.tick(T0 + 1)
    hot.tick(T0 + 1, TargetEffects(temperature_offset_c=5.0))
    assert hot.climate.temperature_c - base.climate.temperature_c == pytest.approx(5.0)
    assert hot.climate.rh_pct < base.climate.rh_pct - 10  # same moisture, warmer air


def test_dp_map_signed_and_word_orders() -> None:
    dp = DpTransmitter(DpParams(dp1_pa=15.0, dp2_pa=-8.0), random.Random(2), T0)
    dp.tick(T0 + 1)
    h = regs(dp, 3, 0, 7)
    assert h[0] == 9711
    assert h[1] == 0
    assert h[3] == 0 and h[5] == 0
    dp1 = enc.decode_s16(h[4:5]) / 10
    dp2 = enc.decode_s16(h[6:7]) / 10
    assert 13 < dp1 < 17
    assert -10 < dp2 < -6
    assert regs(dp, 3, 66, 1) == [0]
    f = regs(dp, 3, 100, 6)
    assert enc.decode_f32(f[0:2], WordOrder.ABCD) == pytest.approx(dp1, abs=0.051)
    assert enc.decode_f32(f[2:4], WordOrder.ABCD) == pytest.approx(dp2, abs=0.051)
    assert 20 < enc.decode_f32(f[4:6], WordOrder.BADC) < 24
    assert dp.read(3, 7, 1) == ExceptionCode.ILLEGAL_DATA_ADDRESS
    assert dp.read(4, 0, 1) == ExceptionCode.ILLEGAL_DATA_ADDRESS


def test_dp_inversion_and_garbage() -> None:
    dp = DpTransmitter(DpParams(), random.Random(2), T0)
    dp.tick(T0 + 1, TargetEffects(dp_override_pa={1: -5.0}, garbage_registers=frozenset({104, 6})))
    assert -7 < enc.decode_s16(regs(dp, 3, 4, 1)) / 10 < -3
    assert regs(dp, 3, 6, 1) == [0x8000]
    assert regs(dp, 3, 104, 2) == [0xC07F, 0x0000]  # NaN, bytes swapped in each word
    assert math.isnan(enc.decode_f32(regs(dp, 3, 104, 2), WordOrder.BADC))


def test_frozen_device_keeps_values() -> None:
    dp = DpTransmitter(DpParams(), random.Random(2), T0)
    dp.tick(T0 + 1)
    before = regs(dp, 3, 100, 6)
    for k in range(2, 10):
        dp.tick(T0 + k, TargetEffects(frozen=True))
    assert regs(dp, 3, 100, 6) == before
    dp.tick(T0 + 11)
    assert regs(dp, 3, 100, 6) != before


def test_press_values_and_states() -> None:
    press = TabletPress(PressParams(batch_id="B-1"), random.Random(9), T0)
    forces = []
    for k in range(1, 200):
        press.tick(T0 + k * 0.5)
        forces.append(press.values["MainCompressionForce"])
    v = press.values
    assert 14 < sum(forces) / len(forces) < 16
    assert 38 < v["TurretSpeed"] < 42
    assert v["Output"] == pytest.approx(v["TurretSpeed"] * 36 * 60)
    assert 240 < v["TabletWeight"] < 260
    assert 70 < v["Hardness"] < 110
    assert 1.5 < v["PreCompressionForce"] < 2.5
    assert 200 < v["EjectionForce"] < 400
    assert 9 < v["FillDepth"] < 11
    press.set_batch("B-2", "HELD")
    press.tick(T0 + 200)
    assert (press.batch_id, press.state) == ("B-2", "HELD")
    assert v["TurretSpeed"] == 0 and v["Output"] == 0 and v["MainCompressionForce"] == 0
    with pytest.raises(ValueError):
        press.set_batch("B-3", "RUNNING")


def test_press_force_drift() -> None:
    press = TabletPress(PressParams(), random.Random(9), T0)
    press.tick(T0 + 1, TargetEffects(force_drift_kn=3.0))
    assert press.values["MainCompressionForce"] > 17


def test_poisson_small_and_large_means() -> None:
    rng = random.Random(4)
    small = [poisson(rng, 3.0) for _ in range(4000)]
    large = [poisson(rng, 400.0) for _ in range(4000)]
    assert sum(small) / len(small) == pytest.approx(3.0, rel=0.05)
    assert sum(large) / len(large) == pytest.approx(400.0, rel=0.01)
    assert poisson(rng, 0.0) == 0
