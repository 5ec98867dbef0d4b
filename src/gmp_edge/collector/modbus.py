"""Modbus TCP driver on pymodbus (async): coalesced register reads and particle-counter records.

One connection and one request in flight per device; every call has a timeout;
reconnects back off exponentially up to a cap; one dead device never stalls the
others because each device runs in its own task.

The driver reaches the device through one seam, :class:`ModbusTransport`: by default a
pymodbus ``AsyncModbusTcpClient`` per connection (:func:`pymodbus_transport`); the unit
tests pass the in-memory mock backend of :mod:`gmp_edge.collector.modbus_fake` instead, together
with a :class:`gmp_edge.clock.Clock` and an event loop on virtual time, so they need no
socket and no real time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException, ModbusIOException

from gmp_edge.clock import SYSTEM_CLOCK, Clock
from gmp_edge.collector import particle
from gmp_edge.collector.codec import Decoded, DecodeError, Order, value_decoder
from gmp_edge.collector.driver import DeviceStatus, Driver, LinkState, Sink, sleep_or_stop
from gmp_edge.collector.plan import Function, ReadRequest, RegisterPoint, plan_requests
from gmp_edge.collector.reading import Cause, Quality, Reading
from gmp_edge.errors import GmpEdgeError
from gmp_edge.retry import Backoff

log = logging.getLogger("gmp_edge.collector.modbus")

_EXCEPTIONS = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}


@dataclass(frozen=True, slots=True)
class ModbusDeviceSpec:
    """Connection and schedule of one Modbus TCP device (or gateway unit)."""

    device_id: str
    host: str
    port: int
    unit_id: int
    timeout_s: float = 1.0
    poll_interval_s: float = 1.0  # <= 0: back-to-back, for benchmarks only
    max_registers: int = 125
    max_gap: int = 0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    # record mode: analog floats' word order; no default here, the configuration has the one
    float_word_order: Order = field(kw_only=True)
    # record mode: the counter counts as stopped after this many of its own cycles without
    # a new record (the configuration's default, the one default of the key)
    record_missed_cycles: int = field(kw_only=True)


@dataclass(frozen=True, slots=True)
class RecordPoint:
    """A tag fed from a particle counter's stored records: a channel or an analog input."""

    tag: str
    channel: int | None = None
    analog: int | None = None
    valid_min: float | None = None  # the sensor range: a value outside it is Bad
    valid_max: float | None = None


def _is_no_answer(exc: BaseException) -> bool:
    """pymodbus reports its own request timeout as ModbusIOException "No response received"."""
    return isinstance(exc, ModbusIOException) and "No response received" in str(exc)


def _what(function: Function, address: int, count: int) -> str:
    """A request as error messages name it."""
    return f"FC{int(function):02d} {address}+{count}"


class ModbusResponse(Protocol):
    """What the driver reads from an answer: pymodbus's ``ModbusPDU`` has this shape.

    An error answer also carries ``exception_code`` (the driver reads it with ``getattr``).
    """

    @property
    def registers(self) -> Sequence[int]:
        """The registers read (empty for a write or an error answer)."""
        ...

    def isError(self) -> bool:  # noqa: N802 (pymodbus's name)
        """True for a Modbus exception answer."""
        ...


class ModbusTransport(Protocol):
    """One Modbus TCP connection to a device, as the driver uses it: the driver's only seam.

    Each call either returns an answer (possibly an exception answer), raises
    ``ModbusException`` or ``OSError`` when the link fails, or never returns (the driver's
    own timeout ends it). ``pymodbus.client.AsyncModbusTcpClient`` satisfies this as is.
    """

    @property
    def connected(self) -> bool:
        """True while the connection is open."""
        ...

    async def connect(self) -> bool:
        """Open the connection; False when it cannot be opened."""
        ...

    def close(self) -> None:
        """Close the connection (idempotent)."""
        ...

    def read_holding_registers(
        self, address: int, *, count: int, device_id: int
    ) -> Awaitable[ModbusResponse]:
        """FC03: ``count`` holding registers from PDU ``address`` of unit ``device_id``."""
        ...

    def read_input_registers(
        self, address: int, *, count: int, device_id: int
    ) -> Awaitable[ModbusResponse]:
        """FC04: ``count`` input registers from PDU ``address`` of unit ``device_id``."""
        ...

    def write_register(
        self, address: int, value: int, *, device_id: int
    ) -> Awaitable[ModbusResponse]:
        """FC06: write one holding register of unit ``device_id``."""
        ...


TransportFactory = Callable[[ModbusDeviceSpec], ModbusTransport]
"""Makes a new, unconnected transport for a device; called once per connect attempt."""


def pymodbus_transport(spec: ModbusDeviceSpec) -> ModbusTransport:
    """The real transport: a pymodbus TCP client that leaves retries and reconnects to us."""
    return AsyncModbusTcpClient(
        spec.host,
        port=spec.port,
        timeout=spec.timeout_s,
        retries=0,
        reconnect_delay=0,  # we own reconnects (capped backoff, status, gaps)
        name=spec.device_id,
    )


# tag, first and end offset of its registers in the response, decoder
_PointDecoder = tuple[str, int, int, Callable[[Sequence[int]], float | Decoded]]


class DeviceFault(GmpEdgeError):
    """The device answered with a Modbus exception: the link is fine, the data is not."""


class LinkFault(GmpEdgeError):
    """No usable answer: timeout, refused, connection lost. The connection is dropped."""


class ModbusDriver(Driver):
    """Polls one Modbus device; in record mode reads and backfills particle-counter records."""

    def __init__(
        self,
        spec: ModbusDeviceSpec,
        points: Sequence[RegisterPoint] = (),
        record_points: Sequence[RecordPoint] = (),
        last_record_s: int | None = None,
        *,
        transport_factory: TransportFactory = pymodbus_transport,
        clock: Clock | None = None,
        backoff: Backoff | None = None,
    ):
        """``transport_factory``, ``clock`` and ``backoff`` are seams for tests: by default
        a pymodbus client, the system clocks and a jittered backoff from the spec.

        Sleeps and request timeouts run on the event loop's clock, so a test that injects
        a clock also runs the driver on a loop whose ``time()`` is the clock's ``monotonic``.
        """
        self.spec = spec
        self.points = list(points)
        self.record_points = list(record_points)
        self.requests: list[ReadRequest] = plan_requests(points, spec.max_registers, spec.max_gap)
        # the hot path's view of the plan: per request, each point's tag, its slice of the
        # response and a decoder specialised for its value spec (built once, not per poll)
        self._plan: list[tuple[ReadRequest, list[_PointDecoder]]] = [
            (
                req,
                [
                    (
                        p.tag,
                        p.address - req.address,
                        p.address - req.address + p.count,
                        value_decoder(p.value),
                    )
                    for p in req.points
                ],
            )
            for req in self.requests
        ]
        self.last_record_s = last_record_s
        self.status = DeviceStatus(
            spec.device_id, "modbus", f"{spec.host}:{spec.port} unit {spec.unit_id}"
        )
        self._new_transport = transport_factory
        self._clock: Clock = clock or SYSTEM_CLOCK
        self._client: ModbusTransport | None = None
        self._backoff = backoff or Backoff(spec.reconnect_min_s, spec.reconnect_max_s, jitter=0.1)
        self._next_attempt = 0.0  # monotonic time of the next connect attempt
        self._pending_gap: tuple[int, int, str] | None = None  # overwritten device records
        # record mode: the counter's own sampling cycle (reported once per change, for the
        # review's expected samples) and when, by our clock, its newest record closed
        self.cycle_s: int | None = None
        self._pending_cycle: tuple[int, int] | None = None  # (from_us, cycle_s)
        self._newest_mono: float | None = None
        self._first_poll_us: int | None = None
        self._not_sampling = False

    @property
    def tags(self) -> list[str]:
        """Every tag path this driver produces."""
        return [p.tag for p in self.points] + [p.tag for p in self.record_points]

    # -- connection ----------------------------------------------------------------

    async def _connect(self) -> bool:
        self.status.state = LinkState.CONNECTING
        client = self._new_transport(self.spec)
        try:
            ok = await asyncio.wait_for(client.connect(), timeout=self.spec.timeout_s * 2)
        except (TimeoutError, OSError, ModbusException) as exc:
            ok = False
            self._fail_link(f"connect failed: {str(exc) or type(exc).__name__}")
        if not ok or not client.connected:
            client.close()
            if self.status.state is LinkState.CONNECTING:
                self._fail_link(
                    f"cannot connect to {self.spec.host}:{self.spec.port} "
                    f"within {self.spec.timeout_s * 2:g} s"
                )
            return False
        self._client = client
        self.status.state = LinkState.CONNECTED
        self.status.connects += 1
        log.info("%s connected to %s", self.spec.device_id, self.status.endpoint)
        return True

    def _fail_link(self, message: str) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
            self.status.disconnects += 1
            log.warning("%s link lost: %s", self.spec.device_id, message)
        self.status.state = LinkState.DISCONNECTED
        self._error(message)

    def _error(self, message: str) -> None:
        self.status.last_error = message
        self.status.last_error_us = self._clock.now_us()

    # -- requests ------------------------------------------------------------------

    async def _read(self, function: Function, address: int, count: int) -> list[int]:
        client = self._client
        if client is None or not client.connected:
            raise LinkFault("not connected")
        call = (
            client.read_holding_registers
            if function is Function.HOLDING
            else client.read_input_registers
        )
        try:
            # asyncio.timeout, not wait_for: no extra task per request on the hot path
            async with asyncio.timeout(self.spec.timeout_s * 1.5):
                rr = await call(address, count=count, device_id=self.spec.unit_id)
        except TimeoutError:
            raise LinkFault(
                f"{_what(function, address, count)}: no answer within {self.spec.timeout_s:g} s"
            ) from None
        except (ModbusException, OSError) as exc:
            if _is_no_answer(exc):  # pymodbus's own timeout said in its words: say it in ours
                raise LinkFault(
                    f"{_what(function, address, count)}: no answer within {self.spec.timeout_s:g} s"
                ) from None
            raise LinkFault(f"{_what(function, address, count)}: {exc}") from None
        if rr.isError():
            code = getattr(rr, "exception_code", None)
            name = _EXCEPTIONS.get(code or 0, "unknown")
            raise DeviceFault(
                f"{_what(function, address, count)}: Modbus exception {code} ({name})"
            )
        regs = list(rr.registers)
        if len(regs) < count:
            raise DeviceFault(
                f"{_what(function, address, count)}: short answer, {len(regs)} registers"
            )
        return regs[:count]

    async def _write(self, address: int, value: int) -> None:
        client = self._client
        if client is None or not client.connected:
            raise LinkFault("not connected")
        try:
            async with asyncio.timeout(self.spec.timeout_s * 1.5):
                rr = await client.write_register(address, value, device_id=self.spec.unit_id)
        except TimeoutError:
            raise LinkFault(f"FC06 {address}: no answer within {self.spec.timeout_s:g} s") from None
        except (ModbusException, OSError) as exc:
            raise LinkFault(f"FC06 {address}: {exc}") from None
        if rr.isError():
            raise DeviceFault(
                f"FC06 {address}: Modbus exception {getattr(rr, 'exception_code', '?')}"
            )

    # -- one poll ------------------------------------------------------------------

    async def poll_registers(self, ts: int) -> list[Reading]:
        """Read every planned request; one reading per register tag."""
        out: list[Reading] = []
        append = out.append
        good = Quality.GOOD
        lost: str | None = None  # why the link broke during this poll
        for req, points in self._plan:
            if lost is not None:  # not sent: its tags carry the cause, not "not connected"
                out += [Reading.bad(p.tag, ts, lost, Cause.NETWORK) for p in req.points]
                continue
            try:
                regs = await self._read(req.function, req.address, req.count)
            except DeviceFault as exc:
                out += [Reading.bad(p.tag, ts, str(exc), Cause.DEVICE) for p in req.points]
                self._error(str(exc))
                continue
            except LinkFault as exc:
                lost = str(exc)
                self._fail_link(lost)
                out += [Reading.bad(p.tag, ts, lost, Cause.NETWORK) for p in req.points]
                continue
            for tag, first, end, decode in points:
                d = decode(regs[first:end])
                if isinstance(d, float):  # Good: the decoder returns the bare value
                    append(Reading(tag, d, good, ts))
                else:
                    append(Reading(tag, d.value, d.quality, ts, None, d.message, d.cause))
        return out

    async def poll_records(self, ts: int) -> list[Reading]:
        """Read new particle-counter records (backfilling after an outage)."""
        if not self.record_points:
            return []
        try:
            settings = particle.decode_settings(
                await self._read(
                    Function.HOLDING, particle.SETTINGS_ADDRESS, particle.SETTINGS_COUNT
                )
            )
            first_contact = self.last_record_s is None
            records = await self._new_records(settings, ts)
        except (DeviceFault, DecodeError) as exc:
            self._error(str(exc))
            return [Reading.bad(p.tag, ts, str(exc), Cause.DEVICE) for p in self.record_points]
        except LinkFault as exc:
            self._fail_link(str(exc))
            return [Reading.bad(p.tag, ts, str(exc), Cause.NETWORK) for p in self.record_points]
        self._note_cycle(settings, ts)
        stopped = self._sampling_check(settings, records, first_contact, ts)
        if stopped is not None:
            return [Reading.bad(p.tag, ts, stopped, Cause.DEVICE) for p in self.record_points]
        out: list[Reading] = []
        for rec in records:
            src = rec.timestamp_s * 1_000_000
            for p in self.record_points:
                if p.channel is not None:
                    a = particle.concentration(rec, p.channel, settings.flow_cfm)
                else:
                    assert p.analog is not None
                    a = particle.analog_value(rec, p.analog)
                a = particle.in_sensor_range(a, p.valid_min, p.valid_max)
                out.append(Reading(p.tag, a.value, a.quality, ts, src, a.message, a.cause))
            self.last_record_s = rec.timestamp_s
        return out

    def _note_cycle(self, settings: particle.CounterSettings, ts: int) -> None:
        if settings.cycle_s != self.cycle_s:
            self.cycle_s = settings.cycle_s
            self._pending_cycle = (ts, settings.cycle_s)

    def _sampling_check(
        self,
        settings: particle.CounterSettings,
        records: list[particle.SampleRecord],
        first_contact: bool,
        ts: int,
    ) -> str | None:
        """Why the counter counts as stopped (its newest record is too old), or None.

        A record that arrives now closed now, give or take a poll; at first contact the
        newest stored record may be days old, which the counter's own clock tells.
        """
        mono = self._clock.monotonic()
        if self._first_poll_us is None:
            self._first_poll_us = ts
        if records:
            age_s = max(0, settings.rtc_s - records[-1].timestamp_s) if first_contact else 0
            self._newest_mono = mono - age_s
        elif self._newest_mono is None:  # nothing stored yet: count from first contact
            self._newest_mono = mono
        newest_s = records[-1].timestamp_s if records else self.last_record_s
        overdue_s = mono - self._newest_mono
        why = particle.not_sampling(newest_s, overdue_s, settings, self.spec.record_missed_cycles)
        if why is None:
            if self._not_sampling:
                log.info("%s: sampling again", self.spec.device_id)
            self._not_sampling = False
            return None
        if records:  # a stale record at first contact is history, not a current value
            self.last_record_s = records[-1].timestamp_s
        if not self._not_sampling:
            # from the start of the first sample that never came (not before this run)
            start = ts - round((overdue_s - settings.hold_time_s) * 1e6)
            start = max(start, self._first_poll_us)
            if start < ts:
                self._pending_gap = (start, ts, why)
            log.warning("%s: %s", self.spec.device_id, why)
        self._not_sampling = True
        self._error(why)
        return why

    async def _record_at(self, index: int) -> particle.SampleRecord:
        await self._write(particle.RECORD_INDEX_ADDRESS, index)
        words = await self._read(Function.INPUT, 0, particle.RECORD_REGISTERS)
        return particle.decode_record(words, self.spec.float_word_order)

    async def _new_records(
        self, settings: particle.CounterSettings, ts: int
    ) -> list[particle.SampleRecord]:
        """Records newer than the last one seen, oldest first.

        Walks back from the newest by record index until it meets a record it
        already has; timestamps, not indices, decide, because a full ring shifts
        indices. Walking past the oldest stored record means the device's memory
        overwrote records we never read: that is a gap, recorded as such.
        """
        count = settings.record_count
        if count == 0:
            return []
        newest = await self._record_at(count - 1)
        if self.last_record_s is None:
            return [newest]  # first contact: the current record, not the device's history
        if newest.timestamp_s < self.last_record_s:
            # only a clock set back makes the newest record older than one already read:
            # timestamps cannot order the records any more, so say so and go on from it
            last, self.last_record_s = self.last_record_s, newest.timestamp_s
            newest_at, last_at = (
                particle.record_time(newest.timestamp_s),
                particle.record_time(last),
            )
            raise DeviceFault(
                f"counter clock set back: its newest record ({newest_at}) is older than the "
                f"last one read ({last_at}); records stored since may be missing, check the "
                "counter's clock"
            )
        if newest.timestamp_s == self.last_record_s:
            return []
        found = [newest]
        index = count - 2
        while index >= 0:
            rec = await self._record_at(index)
            if rec.timestamp_s <= self.last_record_s:
                break
            index -= 1
            if rec.timestamp_s >= found[-1].timestamp_s:
                # a sample closed during the walk and the full ring shifted by one: this index
                # now holds a record already taken (or one newer, read next poll); a record is
                # emitted once
                continue
            found.append(rec)
        else:
            oldest = found[-1]
            lost_s = oldest.timestamp_s - oldest.sample_time_s - self.last_record_s
            if lost_s > 0:
                self._pending_gap = (
                    self.last_record_s * 1_000_000,
                    (oldest.timestamp_s - oldest.sample_time_s) * 1_000_000,
                    f"device record memory ({count} records) overwrote about "
                    f"{lost_s} s of samples before they could be read",
                )
        if len(found) > 1:
            self.status.backfilled += len(found) - 1
            log.info(
                "%s backfilled %d records from device memory", self.spec.device_id, len(found) - 1
            )
        found.reverse()
        return found

    # -- the loop ------------------------------------------------------------------

    def _all_bad(self, ts: int, message: str, cause: Cause) -> list[Reading]:
        return [Reading.bad(t, ts, message, cause) for t in self.tags]

    async def poll_once(self) -> list[Reading]:
        """One poll: connect if due and possible, read everything, one reading per tag."""
        ts = self._clock.now_us()
        if self._client is None:
            if self._clock.monotonic() < self._next_attempt:
                return self._all_bad(ts, self.status.last_error or "not connected", Cause.NETWORK)
            if not await self._connect():
                self._next_attempt = self._clock.monotonic() + self._backoff.next_delay()
                return self._all_bad(ts, self.status.last_error or "not connected", Cause.NETWORK)
            self._backoff.reset()
        t0 = time.perf_counter()
        readings = await self.poll_registers(ts)
        if self._client is not None:
            readings += await self.poll_records(ts)
        else:  # the link broke during the register reads: the records were not read either
            readings += [
                Reading.bad(p.tag, ts, self.status.last_error or "link lost", Cause.NETWORK)
                for p in self.record_points
            ]
        self.status.last_poll_ms = (time.perf_counter() - t0) * 1000
        return readings

    async def run(self, sink: Sink, stop: asyncio.Event) -> None:
        """Poll on schedule until ``stop``; see :class:`collector.driver.Driver`."""
        interval = self.spec.poll_interval_s
        due = self._clock.monotonic()
        try:
            while not stop.is_set():
                try:
                    readings = await self.poll_once()
                except Exception as exc:  # a bug must not stop collection silently
                    log.exception("%s poll failed", self.spec.device_id)
                    self._fail_link(f"collector error: {exc!r}")
                    readings = self._all_bad(
                        self._clock.now_us(), f"collector error: {exc!r}", Cause.COLLECTOR
                    )
                self._account(readings)
                await sink.put(readings)
                if self._pending_gap is not None:
                    start, end, msg = self._pending_gap
                    self._pending_gap = None
                    await sink.gap(
                        [p.tag for p in self.record_points], start, end, Cause.DEVICE, msg
                    )
                if self._pending_cycle is not None:
                    from_us, cycle = self._pending_cycle
                    self._pending_cycle = None
                    await sink.sample_interval(
                        [p.tag for p in self.record_points], from_us, float(cycle)
                    )
                if interval <= 0:  # back-to-back polling (benchmarks): no schedule to miss
                    await asyncio.sleep(0)
                    continue
                due += interval
                late = self._clock.monotonic() - due
                if late > 0:
                    missed = int(late // interval) + 1
                    self.status.missed_polls += missed
                    skipped_from = self._clock.now_us() - int(late * 1_000_000)
                    due += missed * interval
                    if any(r.quality is not Quality.BAD for r in readings):
                        # a failing device is already in a gap; only a healthy one needs this
                        await sink.gap(
                            [p.tag for p in self.points],
                            skipped_from,
                            self._clock.now_us(),
                            Cause.COLLECTOR,
                            f"{missed} poll(s) missed: the poll took longer than "
                            f"the {interval:g} s interval",
                        )
                if await sleep_or_stop(stop, due - self._clock.monotonic()):
                    break
        finally:
            if self._client is not None:
                self._client.close()
                self._client = None
            self.status.state = LinkState.STOPPED

    def _account(self, readings: list[Reading]) -> None:
        self.status.polls += 1
        self.status.readings += len(readings)
        if readings and all(r.quality is Quality.BAD for r in readings):
            self.status.failed_polls += 1
        elif readings:
            self.status.last_good_us = self._clock.now_us()
