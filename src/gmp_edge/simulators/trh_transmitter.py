"""Temperature / relative humidity transmitter modelled on a Vaisala HMT330's Modbus map.

Holding floats use low word first (CDAB), except absolute humidity, which is fully
little-endian (DCBA) - deliberately awkward, as mixed word orders are what collectors meet in
the field. The input registers carry scaled integers for simple PLC-style clients.
"""

from __future__ import annotations

import random

from gmp_edge.simulators.encoding import WordOrder
from gmp_edge.simulators.physics import RoomClimate, absolute_humidity_g_m3, dew_point_c
from gmp_edge.simulators.register_device import RegisterDevice
from gmp_edge.simulators.registers import Field, Kind
from gmp_edge.simulators.scenario import TargetEffects
from gmp_edge.simulators.spec import TrhParams

DEVICE_NAME = "HMT330 TRH"

# Input register 2 status bits.
STATUS_T_SENSOR_FAULT = 1 << 0
STATUS_RH_SENSOR_FAULT = 1 << 1


def _holding_fields() -> list[Field]:
    cdab = WordOrder.CDAB
    return [
        Field("rh_pct", 0, Kind.F32, cdab),
        Field("temperature_c", 2, Kind.F32, cdab),
        Field("dew_point_c", 4, Kind.F32, cdab),
        Field("absolute_humidity_g_m3", 6, Kind.F32, WordOrder.DCBA),
        Field("uptime_s", 512, Kind.U32, cdab),
        Field("device_name", 768, Kind.ASCII, length=8),
    ]


def _input_fields() -> list[Field]:
    return [
        Field("temperature_c100", 0, Kind.S16),
        Field("rh_pct100", 1, Kind.U16),
        Field("status", 2, Kind.U16),
    ]


class TrhTransmitter(RegisterDevice):
    """Simulated T/RH transmitter; see the module docstring for the register layout."""

    def __init__(self, params: TrhParams, rng: random.Random, now: float) -> None:
        super().__init__(_holding_fields(), _input_fields())
        self.params = params
        self.climate = RoomClimate(rng, params.temperature_c, params.rh_pct)
        self._started = now
        self._now = now
        self.holding.set("device_name", DEVICE_NAME)
        self._publish(now)

    def step(self, now: float, effects: TargetEffects) -> None:
        """Advance the room climate and refresh every register."""
        self.climate.step(max(0.0, now - self._now), effects.temperature_offset_c)
        self._now = now
        self._publish(now)

    def _publish(self, now: float) -> None:
        t, rh = self.climate.temperature_c, self.climate.rh_pct
        h = self.holding
        h.set("rh_pct", rh)
        h.set("temperature_c", t)
        h.set("dew_point_c", dew_point_c(t, rh))
        h.set("absolute_humidity_g_m3", absolute_humidity_g_m3(t, rh))
        h.set("uptime_s", int(now - self._started))
        i = self.input
        i.set("temperature_c100", max(-32768, min(32767, round(t * 100))))
        i.set("rh_pct100", max(0, min(10000, round(rh * 100))))
        i.set("status", 0)
