"""Mock mode of the Modbus driver: devices as register images in memory, faults on a script.

A :class:`FakeModbusServer` stands for one Modbus TCP endpoint (a device or a gateway with
several units). Its :meth:`~FakeModbusServer.transport` is a
:data:`collector.modbus.TransportFactory`, so a driver built with
``ModbusDriver(spec, points, transport_factory=server.transport)`` polls it exactly as it
polls a real device, without a socket. Answers are real pymodbus PDUs and link failures
real pymodbus exceptions, so the driver's code paths are the production ones.

What it can do:

* hold a register image per unit (holding and input banks); reading a register that is
  not in the image or writing one not declared writable is answered with exception 2, a
  unit that is not on the gateway with exception 11, a read count outside 1..125 with
  exception 3, as real devices do;
* log every request (unit, function, address, count, loop time) and every connect attempt,
  and measure how many requests one connection had in flight at once (give answers a
  ``latency_s`` so that overlapping requests would show) and how many connections were
  open at once;
* script faults with :meth:`FakeModbusServer.fail`: no answer (pymodbus's own timeout),
  a hang (only the driver's timeout ends it), a Modbus exception code, the connection
  dropping mid-request, a short answer; refuse or hang connects; run an action just before
  the n-th next request is answered (to change the device between two requests);
* model a Lighthouse particle counter (:class:`FakeParticleCounter`): settings registers,
  the record-index register and a ring of records that advances, overwrites its oldest
  records when full and can be cleared.

Timed behaviour (no answer, hang) waits on the event loop, so a test that runs on a loop
with virtual time sees it without real time passing. This module is for tests and demos;
no configuration selects it.
"""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from pymodbus.exceptions import ConnectionException, ModbusIOException
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersResponse,
    ReadInputRegistersResponse,
    WriteSingleRegisterResponse,
)

from gmp_edge.collector import particle
from gmp_edge.collector.codec import Order
from gmp_edge.collector.modbus import ModbusDeviceSpec

if TYPE_CHECKING:
    from gmp_edge.collector.modbus import TransportFactory

READ_HOLDING, READ_INPUT, WRITE_REGISTER = 3, 4, 6
ILLEGAL_DATA_ADDRESS, ILLEGAL_DATA_VALUE, GATEWAY_TARGET_FAILED = 2, 3, 11


class FaultKind(StrEnum):
    """What a scripted fault does to the request it hits."""

    NO_ANSWER = "no_answer"  # no reply: pymodbus gives up after the client timeout
    HANG = "hang"  # no reply and no client timeout: only the driver's own guard ends it
    EXCEPTION = "exception"  # a Modbus exception answer with ``code``
    DISCONNECT = "disconnect"  # the connection drops while the request is out
    SHORT = "short"  # an answer with one register fewer than asked


@dataclass
class Fault:
    """A scripted fault: hits the next ``times`` requests that match (``None``: every one)."""

    kind: FaultKind
    code: int = 4
    unit: int | None = None
    function: int | None = None
    address: int | None = None
    times: int | None = 1

    def matches(self, unit: int, function: int, address: int) -> bool:
        """True if this fault applies to the request."""
        return (
            (self.unit is None or self.unit == unit)
            and (self.function is None or self.function == function)
            and (self.address is None or self.address == address)
        )


@dataclass(frozen=True, slots=True)
class FakeRequest:
    """One request as the fake received it; ``count`` is the value for a write."""

    unit: int
    function: int
    address: int
    count: int
    at: float  # event-loop time


class FakeUnit:
    """One Modbus unit: holding and input registers by PDU address (0-based)."""

    def __init__(
        self,
        holding: dict[int, int] | None = None,
        input_registers: dict[int, int] | None = None,
        writable: Sequence[int] = (),
    ):
        self.holding: dict[int, int] = dict(holding or {})
        self.input: dict[int, int] = dict(input_registers or {})
        self.writable = set(writable)

    def bank(self, function: int) -> dict[int, int]:
        """The register bank a function code reads."""
        return self.input if function == READ_INPUT else self.holding

    def set_words(self, function: int, address: int, words: Sequence[int]) -> None:
        """Lay ``words`` into the bank of ``function`` from ``address`` on (any int: garbage
        too, as a broken device or gateway might send)."""
        bank = self.bank(function)
        for i, w in enumerate(words):
            bank[address + i] = w

    def before_read(self, function: int) -> None:
        """Hook: refresh the bank about to be read (models override it)."""

    def read(self, function: int, address: int, count: int) -> list[int] | int:
        """The registers, or an exception code."""
        self.before_read(function)
        bank = self.bank(function)
        try:
            return [bank[a] for a in range(address, address + count)]
        except KeyError:
            return ILLEGAL_DATA_ADDRESS

    def write(self, address: int, value: int) -> int | None:
        """Write one holding register; an exception code if refused."""
        if address not in self.writable:
            return ILLEGAL_DATA_ADDRESS
        self.holding[address] = value
        self.after_write(address, value)
        return None

    def after_write(self, address: int, value: int) -> None:
        """Hook: react to a written register (models override it)."""


class FakeModbusServer:
    """One Modbus TCP endpoint in memory: units, request log and fault script."""

    def __init__(self, units: dict[int, FakeUnit] | None = None):
        self.units: dict[int, FakeUnit] = dict(units or {})
        self.faults: list[Fault] = []
        self.requests: list[FakeRequest] = []
        self.connect_attempts: list[float] = []  # event-loop times
        self.transports: list[FakeModbusTransport] = []
        self.refuse_connections = False
        self.hang_connections = False
        self.latency_s = 0.0  # how long each answer takes (event-loop time)
        self.max_open_connections = 0  # the most connections open at once
        self._actions: list[tuple[int, Callable[[], object]]] = []

    # -- script --------------------------------------------------------------------

    def fail(
        self,
        kind: FaultKind,
        *,
        code: int = 4,
        unit: int | None = None,
        function: int | None = None,
        address: int | None = None,
        times: int | None = 1,
    ) -> Fault:
        """Script a fault for matching requests; returns it (remove it to end it early)."""
        fault = Fault(kind, code, unit, function, address, times)
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """No more scripted faults (connect refusal and hang included)."""
        self.faults.clear()
        self.refuse_connections = self.hang_connections = False

    def at_request(self, n: int, action: Callable[[], object]) -> None:
        """Run ``action`` just before the ``n``-th next request (1 = the next) is answered."""
        if n < 1:
            raise ValueError("n counts from 1")
        self._actions.append((len(self.requests) + n, action))

    def drop_connections(self) -> None:
        """Close every open connection from the device side (a switch reboot, a cable)."""
        for t in self.transports:
            t.drop()

    # -- what a driver sees ----------------------------------------------------------

    def transport(self, spec: ModbusDeviceSpec) -> FakeModbusTransport:
        """A new, unconnected connection to this endpoint (a ``TransportFactory``)."""
        t = FakeModbusTransport(self, spec.timeout_s)
        self.transports.append(t)
        return t

    @property
    def max_in_flight(self) -> int:
        """The most requests any one connection had outstanding at once."""
        return max((t.max_in_flight for t in self.transports), default=0)

    def _take_fault(self, unit: int, function: int, address: int) -> Fault | None:
        for fault in self.faults:
            if fault.matches(unit, function, address):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                return fault
        return None

    def _log(self, unit: int, function: int, address: int, count: int) -> None:
        self.requests.append(
            FakeRequest(unit, function, address, count, asyncio.get_running_loop().time())
        )
        n = len(self.requests)
        due = [a for at, a in self._actions if at == n]
        self._actions = [(at, a) for at, a in self._actions if at != n]
        for action in due:
            action()


class FakeModbusTransport:
    """One connection to a :class:`FakeModbusServer` (a ``collector.modbus.ModbusTransport``)."""

    def __init__(self, server: FakeModbusServer, timeout_s: float):
        self.server = server
        self.timeout_s = timeout_s
        self.in_flight = 0
        self.max_in_flight = 0
        self._open = False

    @property
    def connected(self) -> bool:
        """True while the connection is open."""
        return self._open

    async def connect(self) -> bool:
        """Open, unless the server refuses (False at once) or hangs (never returns)."""
        self.server.connect_attempts.append(asyncio.get_running_loop().time())
        if self.server.hang_connections:
            await asyncio.Event().wait()
        if self.server.refuse_connections:
            return False
        self._open = True
        open_now = sum(t.connected for t in self.server.transports)
        self.server.max_open_connections = max(self.server.max_open_connections, open_now)
        return True

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self.drop()

    def drop(self) -> None:
        """The connection is gone: ``connected`` is False, further requests fail."""
        self._open = False

    async def read_holding_registers(
        self, address: int, *, count: int, device_id: int
    ) -> ModbusPDU:
        """FC03."""
        return await self._request(device_id, READ_HOLDING, address, count)

    async def read_input_registers(self, address: int, *, count: int, device_id: int) -> ModbusPDU:
        """FC04."""
        return await self._request(device_id, READ_INPUT, address, count)

    async def write_register(self, address: int, value: int, *, device_id: int) -> ModbusPDU:
        """FC06."""
        return await self._request(device_id, WRITE_REGISTER, address, value)

    async def _request(self, unit: int, function: int, address: int, count: int) -> ModbusPDU:
        if not self._open:
            raise ConnectionException("Not connected")
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self.server._log(unit, function, address, count)
            fault = self.server._take_fault(unit, function, address)
            if self.server.latency_s > 0:
                await asyncio.sleep(self.server.latency_s)
            if fault is not None:
                return await self._faulty(fault, unit, function, address, count)
            return self._answer(unit, function, address, count)
        finally:
            self.in_flight -= 1

    async def _faulty(
        self, fault: Fault, unit: int, function: int, address: int, count: int
    ) -> ModbusPDU:
        kind = fault.kind
        if kind is FaultKind.EXCEPTION:
            return ExceptionResponse(function, fault.code, device_id=unit)
        if kind is FaultKind.DISCONNECT:
            # pymodbus 3.16 notices the lost connection only at its timeout; raising at once
            # is what it does when the transport is already gone. Either way a ModbusException.
            self.drop()
            raise ConnectionException("Connection lost during request")
        if kind is FaultKind.HANG:
            await asyncio.Event().wait()  # until the caller's timeout cancels it
        if kind is FaultKind.NO_ANSWER:
            await asyncio.sleep(self.timeout_s)  # pymodbus's own wait (retries=0)
            raise ModbusIOException(
                "No response received after 0 retries, continue with next request",
                function,
                dev_id=unit,
            )
        answer = self._answer(unit, function, address, count)  # SHORT
        answer.registers = list(answer.registers)[:-1]
        return answer

    def _answer(self, unit: int, function: int, address: int, count: int) -> ModbusPDU:
        device = self.server.units.get(unit)
        if device is None:
            return ExceptionResponse(function, GATEWAY_TARGET_FAILED, device_id=unit)
        if function == WRITE_REGISTER:
            code = device.write(address, count)
            if code is not None:
                return ExceptionResponse(function, code, device_id=unit)
            return WriteSingleRegisterResponse(dev_id=unit, address=address, registers=[count])
        if not 1 <= count <= 125:
            return ExceptionResponse(function, ILLEGAL_DATA_VALUE, device_id=unit)
        regs = device.read(function, address, count)
        if isinstance(regs, int):
            return ExceptionResponse(function, regs, device_id=unit)
        cls = ReadInputRegistersResponse if function == READ_INPUT else ReadHoldingRegistersResponse
        return cls(dev_id=unit, registers=regs)


# -- particle counter ----------------------------------------------------------------------


def _u32(value: int) -> list[int]:
    return [(value >> 16) & 0xFFFF, value & 0xFFFF]


def _f32(value: float, word_order: Order) -> list[int]:
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [lo, hi] if word_order is Order.LITTLE else [hi, lo]


@dataclass(frozen=True)
class FakeRecord:
    """One stored sample of a :class:`FakeParticleCounter` (``timestamp_s``: end of sample)."""

    timestamp_s: int
    sample_time_s: int
    counts: tuple[int, ...] = ()  # cumulative raw counts, channel 1 first; up to 16
    status: int = 0  # data-status bits, see collector.particle
    analog: tuple[float, ...] = ()  # up to 16 analog channels
    location: int = 1

    def words(self, float_word_order: Order) -> list[int]:
        """The 76 input registers that show this record."""
        counts = list(self.counts) + [0] * (16 - len(self.counts))
        analog = list(self.analog) + [0.0] * (16 - len(self.analog))
        out = _u32(self.timestamp_s & 0xFFFF_FFFF) + _u32(self.sample_time_s)
        out += _u32(self.location) + _u32(self.status)
        for c in counts:
            out += _u32(c)
        for a in analog:
            out += _f32(a, float_word_order)
        return [*out, 0b11, 0b1111, 0, 0]  # valid analog/particle masks, no alarms


class FakeParticleCounter(FakeUnit):
    """A Lighthouse REMOTE-like counter: a ring of ``capacity`` records behind register 24.

    Index 0 is the oldest record; when the ring is full, storing a record drops the oldest
    and shifts every index down by one. Writing holding 24 selects the record the input
    registers 0..75 show (0xFFFF: the newest; an index with no record shows zeros).
    """

    def __init__(
        self,
        capacity: int = 100,
        flow_cfm: float = 1.0,
        sample_time_s: int = 60,
        start_s: int = 1_700_000_000,
        float_word_order: Order = Order.LITTLE,
    ):
        super().__init__(
            holding=dict.fromkeys(range(50), 0),
            input_registers=dict.fromkeys(range(particle.RECORD_REGISTERS), 0),
            writable=(particle.RECORD_INDEX_ADDRESS, 25, 28, 29, 30, 31, 32, 33),
        )
        self.records: deque[FakeRecord] = deque(maxlen=capacity)
        self.float_word_order = float_word_order
        self.flow_cfm = flow_cfm
        self.sample_time_s = sample_time_s
        self.clock_s = start_s  # the counter's clock, epoch s: the next sample starts here
        self.holding[particle.RECORD_INDEX_ADDRESS] = particle.LAST_RECORD
        self.holding[25] = 1

    def store(
        self,
        counts: Sequence[int] = (1000, 500, 100, 10),
        status: int = 0,
        analog: Sequence[float] = (21.0, 45.0),
        timestamp_s: int | None = None,
    ) -> FakeRecord:
        """Close one sample: store a record ending ``sample_time_s`` after the clock."""
        end = self.clock_s + self.sample_time_s if timestamp_s is None else timestamp_s
        record = FakeRecord(end, self.sample_time_s, tuple(counts), status, tuple(analog))
        self.records.append(record)
        self.clock_s = end
        return record

    def sample(
        self, n: int, counts: Sequence[int] = (1000, 500, 100, 10), status: int = 0
    ) -> list[FakeRecord]:
        """Store ``n`` consecutive records."""
        return [self.store(counts, status) for _ in range(n)]

    def clear(self) -> None:
        """Clear the record memory (the counter's "clear buffer" command)."""
        self.records.clear()

    def selected(self) -> FakeRecord | None:
        """The record holding 24 selects, or None."""
        index = self.holding[particle.RECORD_INDEX_ADDRESS]
        if not self.records:
            return None
        if index == particle.LAST_RECORD:
            return self.records[-1]
        return self.records[index] if index < len(self.records) else None

    def before_read(self, function: int) -> None:
        """Show the selected record, or refresh the settings."""
        if function == READ_INPUT:
            record = self.selected()
            words = record.words(self.float_word_order) if record else [0] * 76
            self.set_words(READ_INPUT, 0, words)
            return
        h = self.holding
        h[22] = round(self.flow_cfm * 100)
        h[23] = len(self.records)
        h[26], h[27] = _u32(self.clock_s & 0xFFFF_FFFF)
        h[32], h[33] = _u32(self.sample_time_s)


if TYPE_CHECKING:

    def _is_a_transport_factory(server: FakeModbusServer) -> TransportFactory:
        return server.transport  # mypy checks the fake against collector.modbus.ModbusTransport


__all__ = [
    "FakeModbusServer",
    "FakeModbusTransport",
    "FakeParticleCounter",
    "FakeRecord",
    "FakeRequest",
    "FakeUnit",
    "Fault",
    "FaultKind",
]
