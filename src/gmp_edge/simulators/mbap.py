"""Modbus TCP framing (MBAP header), as a pure incremental decoder.

A Modbus TCP ADU is a 7-byte MBAP header - transaction id (u16), protocol id (u16, always 0),
length (u16: bytes that follow, unit id included), unit id (u8) - then the PDU. TCP is a byte
stream, so a frame may arrive in pieces or several in one segment; :class:`FrameDecoder`
buffers bytes and yields complete frames. A header that cannot be right (protocol id not 0,
length outside 2..254) raises :class:`FrameError`; a server then drops the connection, since
it can no longer find the next frame boundary.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from gmp_edge.errors import GmpEdgeError

MBAP_HEADER_LEN = 7
MAX_PDU_LEN = 253  # Modbus spec: 256-byte RTU ADU minus address and CRC
MIN_LENGTH_FIELD = 2  # unit id + function code
MAX_LENGTH_FIELD = MAX_PDU_LEN + 1

_HEADER = struct.Struct(">HHHB")


class FrameError(GmpEdgeError, ValueError):
    """The byte stream is not valid Modbus TCP."""


@dataclass(frozen=True)
class Frame:
    """One Modbus TCP request or response: header fields and the PDU."""

    transaction_id: int
    unit_id: int
    pdu: bytes
    protocol_id: int = 0


def encode_frame(frame: Frame) -> bytes:
    """Serialize a frame: MBAP header (length computed) followed by the PDU."""
    if not 1 <= len(frame.pdu) <= MAX_PDU_LEN:
        raise ValueError(f"PDU length {len(frame.pdu)} outside 1..{MAX_PDU_LEN}")
    header = _HEADER.pack(
        frame.transaction_id & 0xFFFF, frame.protocol_id, len(frame.pdu) + 1, frame.unit_id & 0xFF
    )
    return header + frame.pdu


def parse_header(data: bytes) -> tuple[int, int, int, int]:
    """Validate a 7-byte MBAP header; return (transaction id, protocol id, length, unit id)."""
    if len(data) != MBAP_HEADER_LEN:
        raise FrameError(f"MBAP header needs {MBAP_HEADER_LEN} bytes, got {len(data)}")
    transaction_id, protocol_id, length, unit_id = _HEADER.unpack(data)
    if protocol_id != 0:
        raise FrameError(f"protocol id {protocol_id} is not Modbus (0)")
    if not MIN_LENGTH_FIELD <= length <= MAX_LENGTH_FIELD:
        raise FrameError(f"length field {length} outside {MIN_LENGTH_FIELD}..{MAX_LENGTH_FIELD}")
    return transaction_id, protocol_id, length, unit_id


class FrameDecoder:
    """Incremental MBAP decoder: ``feed`` bytes, get back the frames completed so far."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes buffered that do not yet form a complete frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return every complete frame, in order.

        Raises FrameError on a malformed header; the decoder is then unusable.
        """
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= MBAP_HEADER_LEN:
            transaction_id, protocol_id, length, unit_id = parse_header(
                bytes(self._buffer[:MBAP_HEADER_LEN])
            )
            end = MBAP_HEADER_LEN - 1 + length  # the length field counts the unit id byte
            if len(self._buffer) < end:
                break
            pdu = bytes(self._buffer[MBAP_HEADER_LEN:end])
            del self._buffer[:end]
            frames.append(Frame(transaction_id, unit_id, pdu, protocol_id))
        return frames
