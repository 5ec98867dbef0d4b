"""Modbus PDU handling: decode a request, ask the device, encode the response.

Supported function codes: 03 read holding registers, 04 read input registers, 06 write
single register, 16 (0x10) write multiple registers. Anything else is answered with
exception 01. Pure: no sockets, so every malformed request is unit-testable.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from enum import IntEnum
from typing import Protocol

log = logging.getLogger(__name__)

READ_HOLDING = 0x03
READ_INPUT = 0x04
WRITE_SINGLE = 0x06
WRITE_MULTIPLE = 0x10

MAX_READ_COUNT = 125  # Modbus spec limit for FC03/04
MAX_WRITE_COUNT = 123  # Modbus spec limit for FC16


class ExceptionCode(IntEnum):
    """Modbus exception codes the simulators can answer with."""

    ILLEGAL_FUNCTION = 0x01
    ILLEGAL_DATA_ADDRESS = 0x02
    ILLEGAL_DATA_VALUE = 0x03
    DEVICE_FAILURE = 0x04
    ACKNOWLEDGE = 0x05
    DEVICE_BUSY = 0x06
    GATEWAY_PATH_UNAVAILABLE = 0x0A
    GATEWAY_TARGET_NO_RESPONSE = 0x0B


class ModbusDevice(Protocol):
    """What a Modbus unit behind an endpoint must offer."""

    def read(self, function: int, address: int, count: int) -> list[int] | int:
        """Registers for FC03 (holding) or FC04 (input), or an exception code."""
        ...

    def write(self, address: int, values: Sequence[int]) -> int | None:
        """Write holding registers; None on success, else an exception code."""
        ...


def exception_pdu(function: int, code: int) -> bytes:
    """The exception response PDU: function code with bit 7 set, then the code."""
    return bytes(((function | 0x80) & 0xFF, code & 0xFF))


def handle_pdu(device: ModbusDevice, pdu: bytes) -> bytes:
    """Answer one request PDU for ``device``; always returns a response PDU."""
    function = pdu[0]
    try:
        match function:
            case 0x03 | 0x04:
                return _read(device, function, pdu)
            case 0x06:
                return _write_single(device, pdu)
            case 0x10:
                return _write_multiple(device, pdu)
            case _:
                return exception_pdu(function, ExceptionCode.ILLEGAL_FUNCTION)
    except Exception:  # a bug in a device model must look like a device failure, not a hang
        log.exception("device raised while handling function %#04x", function)
        return exception_pdu(function, ExceptionCode.DEVICE_FAILURE)


def _read(device: ModbusDevice, function: int, pdu: bytes) -> bytes:
    if len(pdu) != 5:
        return exception_pdu(function, ExceptionCode.ILLEGAL_DATA_VALUE)
    address, count = struct.unpack(">HH", pdu[1:5])
    if not 1 <= count <= MAX_READ_COUNT:
        return exception_pdu(function, ExceptionCode.ILLEGAL_DATA_VALUE)
    if address + count > 0x10000:
        return exception_pdu(function, ExceptionCode.ILLEGAL_DATA_ADDRESS)
    result = device.read(function, address, count)
    if isinstance(result, int):
        return exception_pdu(function, result)
    if len(result) != count:
        raise RuntimeError(f"device returned {len(result)} registers for {count}")
    return struct.pack(f">BB{count}H", function, 2 * count, *result)


def _write_single(device: ModbusDevice, pdu: bytes) -> bytes:
    if len(pdu) != 5:
        return exception_pdu(WRITE_SINGLE, ExceptionCode.ILLEGAL_DATA_VALUE)
    address, value = struct.unpack(">HH", pdu[1:5])
    code = device.write(address, [value])
    if code is not None:
        return exception_pdu(WRITE_SINGLE, code)
    return pdu  # the normal response echoes the request


def _write_multiple(device: ModbusDevice, pdu: bytes) -> bytes:
    if len(pdu) < 6:
        return exception_pdu(WRITE_MULTIPLE, ExceptionCode.ILLEGAL_DATA_VALUE)
    address, count, byte_count = struct.unpack(">HHB", pdu[1:6])
    data = pdu[6:]
    if not 1 <= count <= MAX_WRITE_COUNT or byte_count != 2 * count or len(data) != byte_count:
        return exception_pdu(WRITE_MULTIPLE, ExceptionCode.ILLEGAL_DATA_VALUE)
    if address + count > 0x10000:
        return exception_pdu(WRITE_MULTIPLE, ExceptionCode.ILLEGAL_DATA_ADDRESS)
    values = list(struct.unpack(f">{count}H", data))
    code = device.write(address, values)
    if code is not None:
        return exception_pdu(WRITE_MULTIPLE, code)
    return struct.pack(">BHH", WRITE_MULTIPLE, address, count)
