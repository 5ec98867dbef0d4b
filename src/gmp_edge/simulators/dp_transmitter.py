"""Two-channel differential pressure transmitter modelled on a Huba 699M, made signed.

The real 699M registers are unsigned, so a pressure inversion could not be shown; this
simulator stores DP as signed int16 (x0.1 Pa) and as float32, so an inversion (negative DP)
is representable. The sensor temperature float is byte-swapped (BADC) on purpose.
"""

from __future__ import annotations

import random

from gmp_edge.simulators.encoding import WordOrder
from gmp_edge.simulators.physics import RoomClimate, Wander
from gmp_edge.simulators.register_device import RegisterDevice
from gmp_edge.simulators.registers import Field, Kind
from gmp_edge.simulators.scenario import TargetEffects
from gmp_edge.simulators.spec import DpParams

TYPE_CODE = 9711  # Huba: 2 x 1250 Pa
FULL_SCALE_PA = 1250.0

# Reliability codes (holding 3 and 5).
RELIABILITY_VALID = 0
RELIABILITY_OUT_OF_RANGE = 1
RELIABILITY_SENSOR_FAULT = 2

UNIT_PA = 0


def _holding_fields() -> list[Field]:
    return [
        Field("type_code", 0, Kind.U16),
        Field("error_code", 1, Kind.U16),
        Field("analog_output_coupling", 2, Kind.U16, writable=True),
        Field("dp1_reliability", 3, Kind.U16),
        Field("dp1_pa10", 4, Kind.S16),
        Field("dp2_reliability", 5, Kind.U16),
        Field("dp2_pa10", 6, Kind.S16),
        Field("unit", 66, Kind.U16),
        Field("dp1_pa", 100, Kind.F32, WordOrder.ABCD),
        Field("dp2_pa", 102, Kind.F32, WordOrder.ABCD),
        Field("sensor_temperature_c", 104, Kind.F32, WordOrder.BADC),
    ]


class DpTransmitter(RegisterDevice):
    """Simulated DP transmitter: each channel wanders around its set point with noise."""

    def __init__(self, params: DpParams, rng: random.Random, now: float) -> None:
        super().__init__(_holding_fields(), [])
        self.params = params
        self._rng = rng
        self._now = now
        self.climate = RoomClimate(rng, params.temperature_c, 45.0)
        self._setpoints = {1: params.dp1_pa, 2: params.dp2_pa}
        # HVAC balance drifts slowly (+-0.5 Pa) under fast sensor noise.
        self._drift = {ch: Wander(rng, sigma=0.5, tau_s=600.0) for ch in (1, 2)}
        self.values: dict[int, float] = dict(self._setpoints)
        self.holding.set("type_code", TYPE_CODE)
        self.holding.set("unit", UNIT_PA)
        self._publish()

    def step(self, now: float, effects: TargetEffects) -> None:
        """New DP readings; an active dp_inversion pins its channel at the negative value."""
        dt = max(0.0, now - self._now)
        self._now = now
        self.climate.step(dt, effects.temperature_offset_c)
        for ch in (1, 2):
            noise = self._rng.gauss(0.0, 0.2)
            base = effects.dp_override_pa.get(ch, self._setpoints[ch])
            self.values[ch] = base + self._drift[ch].step(dt) + noise
        self._publish()

    def _publish(self) -> None:
        h = self.holding
        for ch in (1, 2):
            value = self.values[ch]
            in_range = abs(value) <= FULL_SCALE_PA
            reliability = RELIABILITY_VALID if in_range else RELIABILITY_OUT_OF_RANGE
            h.set(f"dp{ch}_reliability", reliability)
            h.set(f"dp{ch}_pa10", max(-32768, min(32767, round(value * 10))))
            h.set(f"dp{ch}_pa", value)
        h.set("error_code", 0)
        h.set("sensor_temperature_c", self.climate.temperature_c)
