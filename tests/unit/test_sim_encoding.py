"""Register encodings: every data type and word order round-trips and matches struct."""

from __future__ import annotations

import math
import struct

import pytest

from gmp_edge.simulators import encoding as enc
from gmp_edge.simulators.encoding import WordOrder
from gmp_edge.simulators.registers import Field, Kind, RegisterBank


def _words(raw: bytes) -> list[int]:
    return [raw[0] << 8 | raw[1], raw[2] << 8 | raw[3]]


def _reorder(raw: bytes, order: WordOrder) -> bytes:
    """Independent reference: the byte positions each order puts on the wire."""
    a, b, c, d = raw
    return {
        WordOrder.ABCD: bytes((a, b, c, d)),
        WordOrder.CDAB: bytes((c, d, a, b)),
        WordOrder.BADC: bytes((b, a, d, c)),
        WordOrder.DCBA: bytes((d, c, b, a)),
    }[order]


FLOATS = [0.0, 1.0, -1.5, 21.37, 1234.5678, -0.001, 3.4e38]


@pytest.mark.parametrize("order", list(WordOrder))
@pytest.mark.parametrize("value", FLOATS)
def test_f32_matches_struct_and_round_trips(order: WordOrder, value: float) -> None:
    words = enc.encode_f32(value, order)
    assert words == _words(_reorder(struct.pack(">f", value), order))
    assert enc.decode_f32(words, order) == struct.unpack(">f", struct.pack(">f", value))[0]


@pytest.mark.parametrize("order", list(WordOrder))
@pytest.mark.parametrize("value", [0, 1, 0x1234_5678, 0xFFFF_FFFF, 86_399])
def test_u32_round_trips(order: WordOrder, value: int) -> None:
    words = enc.encode_u32(value, order)
    assert words == _words(_reorder(struct.pack(">I", value), order))
    assert enc.decode_u32(words, order) == value


@pytest.mark.parametrize("order", list(WordOrder))
@pytest.mark.parametrize("value", [0, -1, 1_767_225_600, -(2**31), 2**31 - 1])
def test_s32_round_trips(order: WordOrder, value: int) -> None:
    words = enc.encode_s32(value, order)
    assert words == _words(_reorder(struct.pack(">i", value), order))
    assert enc.decode_s32(words, order) == value


@pytest.mark.parametrize(
    ("value", "word"),
    [(0, 0), (1, 1), (-1, 0xFFFF), (-32768, 0x8000), (32767, 0x7FFF), (-155, 0xFF65)],
)
def test_s16(value: int, word: int) -> None:
    assert enc.encode_s16(value) == [word]
    assert enc.decode_s16([word]) == value
    assert struct.unpack(">h", struct.pack(">H", word))[0] == value


def test_u16_and_range_checks() -> None:
    assert enc.decode_u16(enc.encode_u16(65535)) == 65535
    with pytest.raises(ValueError):
        enc.encode_u16(65536)
    with pytest.raises(ValueError):
        enc.encode_s16(40000)
    with pytest.raises(ValueError):
        enc.decode_u32([1], WordOrder.ABCD)


def test_high_word_first_means_abcd() -> None:
    assert enc.encode_u32(0x0001_0002) == [0x0001, 0x0002]
    assert enc.encode_u32(0x0001_0002, WordOrder.CDAB) == [0x0002, 0x0001]


def test_ascii_high_byte_first_nul_padded() -> None:
    words = enc.encode_ascii("REMOTE 5104P", 8)
    assert words[0] == ord("R") << 8 | ord("E")
    assert len(words) == 8
    assert words[-2:] == [0, 0]
    assert enc.decode_ascii(words) == "REMOTE 5104P"
    assert enc.decode_ascii(enc.encode_ascii("ABC", 2)) == "ABC"  # odd length: low byte NUL
    with pytest.raises(ValueError):
        enc.encode_ascii("x" * 17, 8)


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        (WordOrder.ABCD, [0x7FC0, 0x0000]),
        (WordOrder.CDAB, [0x0000, 0x7FC0]),
        (WordOrder.BADC, [0xC07F, 0x0000]),
        (WordOrder.DCBA, [0x0000, 0xC07F]),
    ],
)
def test_nan_pattern_in_each_order(order: WordOrder, expected: list[int]) -> None:
    assert enc.nan_words(order) == expected
    assert math.isnan(enc.decode_f32(expected, order))


def test_bank_reads_fields_and_refuses_gaps() -> None:
    bank = RegisterBank(
        [
            Field("a", 0, Kind.U16),
            Field("f", 1, Kind.F32, WordOrder.CDAB),
            Field("name", 10, Kind.ASCII, length=2),
        ]
    )
    bank.set("a", 7)
    bank.set("f", 1.0)
    assert bank.read(0, 3) == [7, 0x0000, 0x3F80]
    assert bank.read(2, 1) == [0x3F80]  # a partial read of a 32-bit value is allowed
    assert bank.read(0, 4) is None  # address 3 is unmapped
    assert bank.read(9, 1) is None


def test_bank_garbage_per_kind() -> None:
    bank = RegisterBank(
        [
            Field("i", 0, Kind.S16),
            Field("u", 1, Kind.U32),
            Field("f", 3, Kind.F32, WordOrder.BADC),
        ]
    )
    bank.garbage = frozenset({0, 2, 4})  # one register of a field garbles the whole field
    assert bank.read(0, 5) == [0x8000, 0x8000, 0x8000, 0xC07F, 0x0000]


def test_bank_writes_only_writable_fields_keeping_the_other_word() -> None:
    bank = RegisterBank([Field("ro", 0, Kind.U16), Field("t", 2, Kind.U32, writable=True)])
    bank.set("t", 0x0001_0002)
    assert bank.prepare_write(0, [1]) is None
    assert bank.prepare_write(1, [1]) is None  # unmapped
    assert bank.prepare_write(3, [30]) == {"t": 0x0001_001E}
    assert bank.get("t") == 0x0001_0002  # prepare does not store
    with pytest.raises(ValueError):
        RegisterBank([Field("a", 0, Kind.U32), Field("b", 1, Kind.U16)])  # overlap
