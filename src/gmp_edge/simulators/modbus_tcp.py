"""A small asyncio Modbus TCP server whose faults we control completely.

One :class:`ModbusTcpServer` is one endpoint (a device with its own IP address, or a
gateway): it listens on a host/port and routes each request by unit id to a device object
(:class:`simulators.modbus_pdu.ModbusDevice`). Unknown unit ids get exception 0x0B (gateway
target device failed to respond), as a real gateway does.

Per-unit faults (:class:`UnitFault`) make a unit silent (no reply at all), reset the TCP
connection when a request for it arrives, or answer every request with an exception code.
``stop()``/``start()`` emulate a server restart on the same port. See ADR 0002 for why this
is our own code rather than pymodbus's server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from gmp_edge.errors import GmpEdgeError
from gmp_edge.simulators.mbap import Frame, FrameDecoder, FrameError, encode_frame
from gmp_edge.simulators.modbus_pdu import ExceptionCode, ModbusDevice, exception_pdu, handle_pdu

log = logging.getLogger(__name__)

_READ_CHUNK = 4096


class Disconnect(StrEnum):
    """How a disconnected unit behaves."""

    SILENT = "silent"  # the request is swallowed; the client times out
    RESET = "reset"  # the server resets the TCP connection on the request


@dataclass(frozen=True)
class UnitFault:
    """A communication fault on one unit; the default value means no fault."""

    disconnect: Disconnect | None = None
    exception_code: int | None = None

    @property
    def active(self) -> bool:
        """True when the fault changes the unit's behaviour."""
        return self.disconnect is not None or self.exception_code is not None


class _Reset(GmpEdgeError):
    """Raised inside a connection handler to abort the connection with a TCP RST."""


class ModbusTcpServer:
    """One Modbus TCP endpoint serving several unit ids."""

    def __init__(
        self, host: str, port: int, units: Mapping[int, ModbusDevice], *, name: str = "modbus"
    ) -> None:
        self.host = host
        self.name = name
        self.units: dict[int, ModbusDevice] = dict(units)
        self._requested_port = port
        self._port: int | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._faults: dict[int, UnitFault] = {}

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was requested); stable across restarts."""
        if self._port is None:
            raise RuntimeError(f"{self.name}: not started")
        return self._port

    @property
    def serving(self) -> bool:
        """True while the endpoint accepts connections."""
        return self._server is not None

    def set_fault(self, unit_id: int, fault: UnitFault | None) -> None:
        """Apply (or with None / an inactive fault, clear) a communication fault on a unit."""
        if fault is None or not fault.active:
            self._faults.pop(unit_id, None)
        else:
            self._faults[unit_id] = fault

    async def start(self) -> None:
        """Listen; after a stop, listen again on the same port."""
        if self._server is not None:
            return
        port = self._requested_port if self._port is None else self._port
        # reuse_address lets a restart rebind at once although old sockets sit in TIME_WAIT.
        self._server = await asyncio.start_server(
            self._serve_connection, self.host, port, reuse_address=True
        )
        self._port = self._server.sockets[0].getsockname()[1]
        log.info("%s: Modbus TCP listening on %s:%d", self.name, self.host, self._port)

    async def stop(self) -> None:
        """Stop listening and close every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for writer in list(self._connections):
            writer.close()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()
        log.info("%s: Modbus TCP stopped", self.name)

    def respond(self, frame: Frame) -> bytes | None:
        """The response frame bytes for a request, or None to stay silent.

        Raises ``_Reset`` when the unit is configured to reset the connection.
        """
        fault = self._faults.get(frame.unit_id)
        if fault is not None:
            if fault.disconnect is Disconnect.SILENT:
                return None
            if fault.disconnect is Disconnect.RESET:
                raise _Reset
            if fault.exception_code is not None:
                pdu = exception_pdu(frame.pdu[0], fault.exception_code)
                return encode_frame(Frame(frame.transaction_id, frame.unit_id, pdu))
        device = self.units.get(frame.unit_id)
        if device is None:
            pdu = exception_pdu(frame.pdu[0], ExceptionCode.GATEWAY_TARGET_NO_RESPONSE)
        else:
            pdu = handle_pdu(device, frame.pdu)
        return encode_frame(Frame(frame.transaction_id, frame.unit_id, pdu))

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        self._connections.add(writer)
        peer = writer.get_extra_info("peername")
        decoder = FrameDecoder()
        try:
            while True:
                data = await reader.read(_READ_CHUNK)
                if not data:
                    break
                for frame in decoder.feed(data):
                    response = self.respond(frame)
                    if response is not None:
                        writer.write(response)
                await writer.drain()
        except FrameError as exc:
            log.warning("%s: dropping %s: %s", self.name, peer, exc)
        except _Reset:
            log.info("%s: resetting connection from %s (device_disconnect reset)", self.name, peer)
            _abort_with_rst(writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(writer)
            if task is not None:
                self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0, so the client sees a reset rather than an orderly close."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
