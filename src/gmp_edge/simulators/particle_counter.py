"""Airborne particle counter modelled on the Lighthouse REMOTE 5104P Modbus map (v1.50).

Four channels, cumulative: >= 0.5, >= 1.0, >= 3.0, >= 5.0 um. Every ``sample_time_s`` of wall
time the counter closes a sample and stores a record (raw cumulative counts, timestamp = END
of the sample) in a ring of ``record_capacity``: index 0 is the oldest and, once the ring is
full, storing a record drops the oldest and shifts every index down by one. Holding register
24 selects which record the input registers show (0xFFFF = the last one).

Counts are Poisson around concentration x sampled volume, drawn per size bin (0.5-1, 1-3,
3-5, >= 5 um) and summed, so ch1 >= ch2 >= ch3 >= ch4 always holds.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from gmp_edge.simulators.encoding import WordOrder
from gmp_edge.simulators.modbus_pdu import READ_INPUT, ExceptionCode
from gmp_edge.simulators.physics import RoomClimate, Wander, poisson
from gmp_edge.simulators.register_device import RegisterDevice
from gmp_edge.simulators.registers import Field, Kind, Value
from gmp_edge.simulators.scenario import TargetEffects
from gmp_edge.simulators.spec import ParticleCounterParams

CUBIC_FOOT_M3 = 0.0283168
SIZES_UM = (0.5, 1.0, 3.0, 5.0)
LAST_RECORD = 0xFFFF

# Status register (holding 2) bits.
STATUS_RUNNING = 1 << 0
STATUS_SAMPLING = 1 << 1
STATUS_NEW_DATA = 1 << 2
STATUS_DEVICE_ERROR = 1 << 3

# Command register (holding 1) values.
CMD_SAVE_ALL = 1
CMD_CLEAR_BUFFER = 3
CMD_SAVE_PARAMETERS = 4
CMD_REMOTE_CONTROL = 5
CMD_LOCAL_CONTROL = 6
CMD_START = 11
CMD_STOP = 12
CMD_SET_RTC = 13
_ACCEPTED_COMMANDS = {
    CMD_SAVE_ALL,
    CMD_CLEAR_BUFFER,
    CMD_SAVE_PARAMETERS,
    CMD_REMOTE_CONTROL,
    CMD_LOCAL_CONTROL,
    CMD_START,
    CMD_STOP,
    CMD_SET_RTC,
}

MAP_VERSION = 150
FIRMWARE = 210
PRODUCT_NAME = "REMOTE 5104P"
MODEL_NAME = "5104P"
CALIBRATION_INTERVAL_S = 365 * 86_400


def _holding_fields() -> list[Field]:
    u16, u32, s32, ascii_ = Kind.U16, Kind.U32, Kind.S32, Kind.ASCII
    return [
        Field("map_version", 0, u16),
        Field("command", 1, u16, writable=True),
        Field("status", 2, u16),
        Field("firmware", 3, u16),
        Field("serial_number", 4, u32),
        Field("product_name", 6, ascii_, length=8),
        Field("model_name", 14, ascii_, length=8),
        Field("flow_rate", 22, u16),
        Field("record_count", 23, u16),
        Field("record_index", 24, u16, writable=True),
        Field("location", 25, u16, writable=True),
        Field("rtc", 26, s32),
        Field("initial_delay", 28, u32, writable=True),
        Field("hold_time", 30, u32, writable=True),
        Field("sample_time", 32, u32, writable=True),
        Field("data_set", 34, s32, writable=True),
        Field("calibration_due", 46, s32),
    ]


def _input_fields() -> list[Field]:
    fields = [
        Field("timestamp", 0, Kind.S32),
        Field("sample_time", 2, Kind.U32),
        Field("location", 4, Kind.S32),
        Field("data_status", 6, Kind.U32),
    ]
    fields += [Field(f"particle_{ch}", 6 + 2 * ch, Kind.U32) for ch in range(1, 17)]
    # Lighthouse REMOTE floats: big-endian bytes, low word first.
    fields += [Field(f"analog_{ch}", 38 + 2 * ch, Kind.F32, WordOrder.CDAB) for ch in range(1, 17)]
    fields += [
        Field("valid_analog", 72, Kind.U16),
        Field("valid_particle", 73, Kind.U16),
        Field("analog_alarms", 74, Kind.U16),
        Field("particle_alarms", 75, Kind.U16),
    ]
    return fields


@dataclass(frozen=True)
class ParticleRecord:
    """One stored sample: what the input registers show when it is selected."""

    timestamp: int  # epoch s, end of the sample
    sample_time_s: int
    location: int
    data_status: int
    counts: tuple[int, int, int, int]  # cumulative >= 0.5, 1.0, 3.0, 5.0 um
    temperature_c: float
    rh_pct: float


def channel_concentrations(params: ParticleCounterParams) -> tuple[float, float, float, float]:
    """Cumulative concentrations per channel (particles/m3).

    Missing 1.0 and 3.0 um values follow a power law through the 0.5 and 5.0 um ones
    (ISO 14644-1 uses the same shape, exponent 2.08).
    """
    c05, c50 = params.conc_0_5, params.conc_5_0
    # Fall back to the ISO 14644-1 exponent when a zero concentration leaves no slope.
    exponent = math.log(c05 / c50) / math.log(10.0) if c05 > 0 and c50 > 0 else 2.08

    def law(size: float) -> float:
        return c05 * (0.5 / size) ** exponent

    c10 = params.conc_1_0 if params.conc_1_0 is not None else law(1.0)
    c30 = params.conc_3_0 if params.conc_3_0 is not None else law(3.0)
    c30 = min(max(c30, c50), c10)  # keep the chain monotonic whatever was configured
    return c05, min(c10, c05), c30, c50


def sampled_volume_m3(flow_cfm: float, sample_time_s: float) -> float:
    """Air drawn in one sample: flow [ft3/min] x time [min], in m3."""
    return flow_cfm * sample_time_s / 60.0 * CUBIC_FOOT_M3


class ParticleCounter(RegisterDevice):
    """Simulated Lighthouse REMOTE 5104P-like particle counter (see module docstring)."""

    def __init__(self, params: ParticleCounterParams, rng: random.Random, now: float) -> None:
        super().__init__(_holding_fields(), _input_fields())
        self.params = params
        self._rng = rng
        self.records: deque[ParticleRecord] = deque(maxlen=params.record_capacity)
        self.climate = RoomClimate(rng, params.temperature_c, params.rh_pct)
        self._level = Wander(rng, sigma=0.15, tau_s=900.0)  # slow drift of the log concentration
        cumulative = channel_concentrations(params)
        # Differential bins 0.5-1, 1-3, 3-5, >=5 um; summing them gives the cumulative channels.
        self._bins = [cumulative[i] - cumulative[i + 1] for i in range(3)] + [cumulative[3]]
        self._expected = [0.0] * 4  # expected counts accumulated in the current sample
        self.running = True
        self.new_data = False
        self._clock_offset = 0.0
        self._now = now
        self._last_t = now
        self._sample_start = now
        h = self.holding
        h.set("map_version", MAP_VERSION)
        h.set("firmware", FIRMWARE)
        h.set("serial_number", params.serial_number)
        h.set("product_name", PRODUCT_NAME)
        h.set("model_name", MODEL_NAME)
        h.set("flow_rate", round(params.flow_cfm * 100))
        h.set("record_index", LAST_RECORD)
        h.set("location", params.location)
        h.set("sample_time", params.sample_time_s)
        due = int(now // 86_400 * 86_400) + CALIBRATION_INTERVAL_S
        h.set("calibration_due", due)
        self._sync_holding()

    # --- derived state ------------------------------------------------------------------------

    @property
    def sample_time_s(self) -> int:
        """The configured sample time (holding 32-33)."""
        return int(self.holding.get("sample_time"))

    @property
    def location(self) -> int:
        """The configured location number (holding 25)."""
        return int(self.holding.get("location"))

    def status(self) -> int:
        """Holding register 2."""
        bits = 0
        if self.running:
            bits |= STATUS_RUNNING | STATUS_SAMPLING
        if self.new_data:
            bits |= STATUS_NEW_DATA
        return bits

    def selected_record(self) -> ParticleRecord | None:
        """The record holding register 24 selects, or None when there is no such record."""
        index = int(self.holding.get("record_index"))
        if not self.records:
            return None
        if index == LAST_RECORD:
            return self.records[-1]
        return self.records[index] if index < len(self.records) else None

    def _sync_holding(self) -> None:
        h = self.holding
        h.set("status", self.status())
        h.set("record_count", len(self.records))
        h.set("rtc", int(self._now + self._clock_offset))

    def _show(self, record: ParticleRecord | None) -> None:
        """Lay ``record`` into the input registers (all zero when there is none)."""
        i = self.input
        if record is None:
            for name in i.fields:
                i.set(name, 0)
            return
        i.set("timestamp", record.timestamp)
        i.set("sample_time", record.sample_time_s)
        i.set("location", record.location)
        i.set("data_status", record.data_status)
        for ch in range(1, 17):
            i.set(f"particle_{ch}", record.counts[ch - 1] if ch <= 4 else 0)
        i.set("analog_1", record.temperature_c)
        i.set("analog_2", record.rh_pct)
        for ch in range(3, 17):
            i.set(f"analog_{ch}", 0.0)
        i.set("valid_analog", 0b11)
        i.set("valid_particle", 0b1111)
        i.set("analog_alarms", 0)
        i.set("particle_alarms", 0)

    # --- Modbus hooks -------------------------------------------------------------------------

    def before_read(self, function: int) -> None:
        """Refresh the bank about to be read."""
        if function == READ_INPUT:
            self._show(self.selected_record())
        else:
            self._sync_holding()

    def after_read(self, function: int) -> None:
        """Reading a record clears NEW DATA, as on the real instrument."""
        if function == READ_INPUT and self.new_data:
            self.new_data = False
            self._sync_holding()

    def validate_write(self, changes: Mapping[str, Value]) -> int | None:
        """Refuse unknown commands and out-of-range settings with exception 03."""
        limits = {
            "command": lambda v: v in _ACCEPTED_COMMANDS,
            "location": lambda v: 1 <= v <= 200,
            "sample_time": lambda v: 1 <= v <= 86_399,
            "initial_delay": lambda v: v <= 359_999,
            "hold_time": lambda v: v <= 359_999,
        }
        for name, value in changes.items():
            check = limits.get(name)
            if check is not None and not check(int(value)):
                return ExceptionCode.ILLEGAL_DATA_VALUE
        return None

    def after_write(self, changes: Mapping[str, Value]) -> None:
        """Execute a command; the command register always reads back 0."""
        command = changes.get("command")
        if command is not None:
            self.holding.set("command", 0)
            self.execute(int(command))
        self._sync_holding()

    def execute(self, command: int) -> None:
        """Run one command-register command (11 start, 12 stop, 3 clear buffer, 13 set RTC)."""
        if command == CMD_START and not self.running:
            self.running = True
            self._begin_sample(self._now)
        elif command == CMD_STOP:
            self.running = False  # aborts the sample in progress
            self._expected = [0.0] * 4
        elif command == CMD_CLEAR_BUFFER:
            self.records.clear()
            self.new_data = False
        elif command == CMD_SET_RTC:
            self._clock_offset = int(self.holding.get("data_set")) - self._now
        self._sync_holding()

    # --- simulation ---------------------------------------------------------------------------

    def _begin_sample(self, now: float) -> None:
        self._sample_start = now
        self._last_t = now
        self._expected = [0.0] * 4

    def resume(self, now: float) -> None:
        """After a freeze, start a fresh sample instead of back-filling the frozen period."""
        self._begin_sample(now)

    def step(self, now: float, effects: TargetEffects) -> None:
        """Accumulate sampled air; close every sample that has ended by ``now``."""
        self.climate.step(max(0.0, now - self._now), effects.temperature_offset_c)
        self._now = now
        if self.running:
            while True:
                end = self._sample_start + self.sample_time_s
                segment_end = min(now, end)
                self._accumulate(segment_end - self._last_t, effects.particle_factor)
                self._last_t = segment_end
                if now < end:
                    break
                self._close_sample(end)
                self._begin_sample(end)
        self._sync_holding()

    def _accumulate(self, dt: float, factor: float) -> None:
        if dt <= 0:
            return
        level = math.exp(self._level.step(dt))
        volume = sampled_volume_m3(self.params.flow_cfm, dt)
        for i, conc in enumerate(self._bins):
            self._expected[i] += conc * factor * level * volume

    def _close_sample(self, end: float) -> None:
        per_bin = [poisson(self._rng, mean) for mean in self._expected]
        cumulative = (
            sum(per_bin),
            sum(per_bin[1:]),
            sum(per_bin[2:]),
            per_bin[3],
        )
        counts = tuple(min(c, 0xFFFF_FFFF) for c in cumulative)
        overflow = 0b100 if counts != cumulative else 0
        record = ParticleRecord(
            timestamp=round(end + self._clock_offset),
            sample_time_s=self.sample_time_s,
            location=self.location,
            data_status=overflow,
            counts=(counts[0], counts[1], counts[2], counts[3]),
            temperature_c=round(self.climate.temperature_c, 2),
            rh_pct=round(self.climate.rh_pct, 2),
        )
        self.records.append(record)  # deque(maxlen) drops the oldest: indices shift down
        self.new_data = True
