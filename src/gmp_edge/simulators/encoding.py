"""Register encodings: 16/32-bit integers, IEEE float32 in the four word orders, ASCII.

Word orders name the four bytes of the big-endian value A B C D (A most significant) and
the order they travel in two 16-bit registers:

* ``ABCD`` - big-endian, high word first (Modbus "natural" order);
* ``CDAB`` - low word first, big-endian bytes within each word (Lighthouse, Vaisala floats);
* ``BADC`` - high word first, bytes swapped within each word;
* ``DCBA`` - fully little-endian.

All functions are pure; registers are ints in 0..0xFFFF.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from enum import StrEnum


class WordOrder(StrEnum):
    """Byte order of a 32-bit value spread over two registers."""

    ABCD = "ABCD"
    CDAB = "CDAB"
    BADC = "BADC"
    DCBA = "DCBA"


def _bytes_to_words(raw: bytes, order: WordOrder) -> list[int]:
    a, b, c, d = raw
    match order:
        case WordOrder.ABCD:
            return [a << 8 | b, c << 8 | d]
        case WordOrder.CDAB:
            return [c << 8 | d, a << 8 | b]
        case WordOrder.BADC:
            return [b << 8 | a, d << 8 | c]
        case WordOrder.DCBA:
            return [d << 8 | c, b << 8 | a]
    raise ValueError(f"unknown word order {order!r}")  # pragma: no cover - exhaustive match


def _words_to_bytes(words: Sequence[int], order: WordOrder) -> bytes:
    if len(words) != 2:
        raise ValueError(f"a 32-bit value needs 2 registers, got {len(words)}")
    w0, w1 = (check_register(w) for w in words)
    hi0, lo0, hi1, lo1 = w0 >> 8, w0 & 0xFF, w1 >> 8, w1 & 0xFF
    match order:
        case WordOrder.ABCD:
            return bytes((hi0, lo0, hi1, lo1))
        case WordOrder.CDAB:
            return bytes((hi1, lo1, hi0, lo0))
        case WordOrder.BADC:
            return bytes((lo0, hi0, lo1, hi1))
        case WordOrder.DCBA:
            return bytes((lo1, hi1, lo0, hi0))
    raise ValueError(f"unknown word order {order!r}")  # pragma: no cover - exhaustive match


def check_register(value: int) -> int:
    """Return ``value`` if it fits a 16-bit register, else raise ValueError."""
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"register value {value} outside 0..65535")
    return value


def encode_u16(value: int) -> list[int]:
    """Unsigned 16-bit integer -> one register."""
    return [check_register(value)]


def encode_s16(value: int) -> list[int]:
    """Signed 16-bit integer (two's complement) -> one register."""
    if not -0x8000 <= value <= 0x7FFF:
        raise ValueError(f"int16 value {value} outside -32768..32767")
    return [value & 0xFFFF]


def decode_u16(words: Sequence[int]) -> int:
    """One register -> unsigned 16-bit integer."""
    return check_register(words[0])


def decode_s16(words: Sequence[int]) -> int:
    """One register -> signed 16-bit integer."""
    word = check_register(words[0])
    return word - 0x10000 if word & 0x8000 else word


def encode_u32(value: int, order: WordOrder = WordOrder.ABCD) -> list[int]:
    """Unsigned 32-bit integer -> two registers in ``order``."""
    return _bytes_to_words(struct.pack(">I", value), order)


def encode_s32(value: int, order: WordOrder = WordOrder.ABCD) -> list[int]:
    """Signed 32-bit integer -> two registers in ``order``."""
    return _bytes_to_words(struct.pack(">i", value), order)


def encode_f32(value: float, order: WordOrder = WordOrder.ABCD) -> list[int]:
    """IEEE-754 single -> two registers in ``order`` (NaN and infinities pass through)."""
    return _bytes_to_words(struct.pack(">f", value), order)


def decode_u32(words: Sequence[int], order: WordOrder = WordOrder.ABCD) -> int:
    """Two registers in ``order`` -> unsigned 32-bit integer."""
    return int(struct.unpack(">I", _words_to_bytes(words, order))[0])


def decode_s32(words: Sequence[int], order: WordOrder = WordOrder.ABCD) -> int:
    """Two registers in ``order`` -> signed 32-bit integer."""
    return int(struct.unpack(">i", _words_to_bytes(words, order))[0])


def decode_f32(words: Sequence[int], order: WordOrder = WordOrder.ABCD) -> float:
    """Two registers in ``order`` -> IEEE-754 single as a Python float."""
    return float(struct.unpack(">f", _words_to_bytes(words, order))[0])


def encode_ascii(text: str, registers: int) -> list[int]:
    """ASCII text -> ``registers`` registers, 2 chars each, high byte first, NUL padded."""
    raw = text.encode("ascii")
    if len(raw) > 2 * registers:
        raise ValueError(f"text {text!r} longer than {2 * registers} characters")
    raw = raw.ljust(2 * registers, b"\0")
    return [raw[i] << 8 | raw[i + 1] for i in range(0, len(raw), 2)]


def decode_ascii(words: Sequence[int]) -> str:
    """Registers (2 chars each, high byte first) -> text up to the first NUL."""
    raw = b"".join(check_register(w).to_bytes(2, "big") for w in words)
    return raw.split(b"\0", 1)[0].decode("ascii", errors="replace")


# The quiet-NaN float32 pattern 0x7FC00000 and the int "not a value" marker used for garbage.
NAN_F32 = b"\x7f\xc0\x00\x00"
GARBAGE_INT = 0x8000


def nan_words(order: WordOrder) -> list[int]:
    """The quiet NaN bit pattern 0x7FC0 0x0000 laid out in ``order``."""
    return _bytes_to_words(NAN_F32, order)
