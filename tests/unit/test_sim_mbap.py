"""MBAP framing, PDU handling and the server's per-unit fault routing, without sockets."""

from __future__ import annotations

import struct
from collections.abc import Sequence

import pytest

from gmp_edge.simulators.mbap import Frame, FrameDecoder, FrameError, encode_frame, parse_header
from gmp_edge.simulators.modbus_pdu import ExceptionCode, handle_pdu
from gmp_edge.simulators.modbus_tcp import Disconnect, ModbusTcpServer, UnitFault, _Reset


def read_request(tid: int, unit: int, function: int, address: int, count: int) -> bytes:
    return encode_frame(Frame(tid, unit, struct.pack(">BHH", function, address, count)))


class FakeDevice:
    """Holding = address value; input registers 0..9; write stores; 777 raises."""

    def __init__(self) -> None:
        self.written: list[tuple[int, list[int]]] = []

    def read(self, function: int, address: int, count: int) -> list[int] | int:
        if address == 777:
            raise RuntimeError("model bug")
        if function == 4 and address + count > 10:
            return ExceptionCode.ILLEGAL_DATA_ADDRESS
        return [(address + i) & 0xFFFF for i in range(count)]

    def write(self, address: int, values: Sequence[int]) -> int | None:
        if address == 99:
            return ExceptionCode.ILLEGAL_DATA_VALUE
        self.written.append((address, list(values)))
        return None


# --- framing ---------------------------------------------------------------------------------


def test_encode_frame_header() -> None:
    raw = read_request(0x1234, 7, 3, 0, 10)
    assert raw == bytes.fromhex("1234 0000 0006 07 03 0000 000a")


def test_decoder_handles_fragments_and_coalesced_frames() -> None:
    a, b = read_request(1, 1, 3, 0, 1), read_request(2, 2, 4, 5, 2)
    decoder = FrameDecoder()
    stream = a + b
    frames: list[Frame] = []
    for i in range(len(stream)):  # one byte at a time
        frames += decoder.feed(stream[i : i + 1])
    assert [(f.transaction_id, f.unit_id) for f in frames] == [(1, 1), (2, 2)]
    assert frames[1].pdu == bytes.fromhex("04 0005 0002")
    assert decoder.pending == 0
    assert len(FrameDecoder().feed(a + b + a[:3])) == 2


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (bytes.fromhex("0001 0001 0006 01"), "protocol id"),
        (bytes.fromhex("0001 0000 0000 01"), "length field 0"),
        (bytes.fromhex("0001 0000 0001 01"), "length field 1"),
        (bytes.fromhex("0001 0000 00ff 01"), "length field 255"),
        (bytes.fromhex("0001 0000 ffff 01"), "length field 65535"),
    ],
)
def test_malformed_headers_raise(header: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        FrameDecoder().feed(header + b"\x03\x00\x00\x00\x01")


def test_parse_header_needs_seven_bytes() -> None:
    with pytest.raises(FrameError):
        parse_header(b"\x00\x01")
    assert parse_header(bytes.fromhex("0009 0000 0002 05")) == (9, 0, 2, 5)


def test_encode_frame_rejects_empty_or_huge_pdu() -> None:
    with pytest.raises(ValueError):
        encode_frame(Frame(1, 1, b""))
    with pytest.raises(ValueError):
        encode_frame(Frame(1, 1, b"\x03" * 254))


# --- PDU -------------------------------------------------------------------------------------

PDU_CASES = [
    ("read holding", "03 0010 0002", "03 04 0010 0011"),
    ("read input", "04 0000 0001", "04 02 0000"),
    ("read 125", "03 0000 007d", None),
    ("count 0", "03 0000 0000", "83 03"),
    ("count 126", "03 0000 007e", "83 03"),
    ("short read pdu", "03 0000", "83 03"),
    ("long read pdu", "03 0000 0001 00", "83 03"),
    ("past 0xFFFF", "03 ffff 0002", "83 02"),
    ("device says 02", "04 0008 0004", "84 02"),
    ("device raises", "03 0309 0001", "83 04"),
    ("unknown function", "2b 0e 01 00", "ab 01"),
    ("read coils", "01 0000 0001", "81 01"),
    ("write single", "06 0005 1234", "06 0005 1234"),
    ("write single refused", "06 0063 0001", "86 03"),
    ("write single short", "06 0005", "86 03"),
    ("write multiple", "10 0001 0002 04 000a 000b", "10 0001 0002"),
    ("byte count mismatch", "10 0001 0002 03 000a 000b", "90 03"),
    ("data shorter", "10 0001 0002 04 000a", "90 03"),
    ("write 0 registers", "10 0001 0000 00", "90 03"),
    ("write multiple refused", "10 0063 0001 02 0001", "90 03"),
]


@pytest.mark.parametrize(
    ("name", "request_hex", "response_hex"), PDU_CASES, ids=[c[0] for c in PDU_CASES]
)
def test_handle_pdu(name: str, request_hex: str, response_hex: str | None) -> None:
    response = handle_pdu(FakeDevice(), bytes.fromhex(request_hex))
    if response_hex is None:
        assert response[:2] == bytes((3, 250))
        assert len(response) == 2 + 250
    else:
        assert response == bytes.fromhex(response_hex)


def test_write_multiple_reaches_device() -> None:
    device = FakeDevice()
    handle_pdu(device, bytes.fromhex("10 0001 0002 04 000a 000b"))
    assert device.written == [(1, [10, 11])]


# --- server routing and faults (no socket needed) ----------------------------------------------


def test_server_routes_units_and_gateway_exception() -> None:
    server = ModbusTcpServer("127.0.0.1", 0, {1: FakeDevice()})
    ok = server.respond(Frame(5, 1, bytes.fromhex("03 0000 0001")))
    assert ok == bytes.fromhex("0005 0000 0005 01 03 02 0000")
    unknown = server.respond(Frame(6, 9, bytes.fromhex("03 0000 0001")))
    assert unknown == bytes.fromhex("0006 0000 0003 09 83 0b")


def test_server_unit_faults() -> None:
    server = ModbusTcpServer("127.0.0.1", 0, {1: FakeDevice(), 2: FakeDevice()})
    request = Frame(1, 1, bytes.fromhex("04 0000 0001"))
    server.set_fault(1, UnitFault(exception_code=ExceptionCode.DEVICE_BUSY))
    assert server.respond(request) == bytes.fromhex("0001 0000 0003 01 84 06")
    server.set_fault(1, UnitFault(disconnect=Disconnect.SILENT))
    assert server.respond(request) is None
    assert server.respond(Frame(1, 2, request.pdu)) is not None  # other units unaffected
    server.set_fault(1, UnitFault(disconnect=Disconnect.RESET))
    with pytest.raises(_Reset):
        server.respond(request)
    server.set_fault(1, UnitFault())  # inactive fault clears
    assert server.respond(request) == bytes.fromhex("0001 0000 0005 01 04 02 0000")
