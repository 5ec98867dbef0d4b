"""Pure decoding of Modbus register words into engineering values.

No I/O here: a table-driven test covers every data type and every word/byte order.
Orders are named as the manuals do: ABCD (big/big), CDAB (low word first),
BADC (bytes swapped in each word), DCBA (fully little-endian).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gmp_edge.collector.reading import Cause, Quality
from gmp_edge.config.registers import DataType, Order, register_count
from gmp_edge.errors import GmpEdgeError

__all__ = [
    "DataType",
    "DecodeError",
    "Decoded",
    "Order",
    "ValueSpec",
    "decode_raw",
    "decode_value",
    "normalise",
    "register_count",
    "value_decoder",
]


# Struct code per fixed-size type (big-endian once words and bytes are normalised); the
# register count of each type is the configuration's (``register_count``).
_STRUCT: dict[DataType, str] = {
    DataType.INT16: ">h",
    DataType.UINT16: ">H",
    DataType.INT32: ">i",
    DataType.UINT32: ">I",
    DataType.INT64: ">q",
    DataType.UINT64: ">Q",
    DataType.FLOAT32: ">f",
    DataType.FLOAT64: ">d",
}


class DecodeError(GmpEdgeError, ValueError):
    """The registers cannot be turned into a value of the declared type."""


def normalise(
    registers: Sequence[int], word_order: Order = Order.BIG, byte_order: Order = Order.BIG
) -> bytes:
    """Bytes in big-endian order from registers as the device sent them."""
    for r in registers:
        if not 0 <= r <= 0xFFFF:
            raise DecodeError(f"register value {r!r} is not a 16-bit word")
    words = list(registers)
    if word_order is Order.LITTLE:
        words.reverse()
    raw = b"".join(w.to_bytes(2, "big") for w in words)
    if byte_order is Order.LITTLE:
        raw = b"".join(raw[i + 1 : i + 2] + raw[i : i + 1] for i in range(0, len(raw), 2))
    return raw


def decode_raw(
    registers: Sequence[int],
    data_type: DataType,
    word_order: Order = Order.BIG,
    byte_order: Order = Order.BIG,
) -> int | float | str:
    """Decode registers into the raw (unscaled) value of ``data_type``.

    Raises :class:`DecodeError` when the word count is wrong or a string is not text.
    """
    if data_type is DataType.STRING:
        raw = normalise(registers, Order.BIG, byte_order)
        text = raw.split(b"\x00", 1)[0]
        try:
            decoded = text.decode("ascii")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"string registers are not ASCII: {raw.hex()}") from exc
        if not decoded.isprintable():
            raise DecodeError(f"string registers hold control characters: {raw.hex()}")
        return decoded.rstrip(" ")
    count, code = register_count(data_type), _STRUCT[data_type]
    if len(registers) != count:
        raise DecodeError(f"{data_type} needs {count} registers, got {len(registers)}")
    value: int | float = struct.unpack(code, normalise(registers, word_order, byte_order))[0]
    return value


@dataclass(frozen=True, slots=True)
class ValueSpec:
    """How one tag's registers become an engineering value, and what counts as invalid."""

    data_type: DataType
    word_order: Order = Order.BIG
    byte_order: Order = Order.BIG
    scale: float = 1.0
    offset: float = 0.0
    valid_min: float | None = None
    valid_max: float | None = None
    invalid_raw: frozenset[int] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class Decoded:
    """The outcome of decoding one tag: a value (or None) with its quality and reason."""

    value: float | str | None
    quality: Quality
    message: str | None = None
    cause: Cause | None = None


def _hex(registers: Sequence[int]) -> str:
    """Raw words for a message, so a reviewer sees exactly what the device sent."""
    return " ".join(f"0x{r:04X}" if isinstance(r, int) else repr(r) for r in registers)


def decode_value(registers: Sequence[int], spec: ValueSpec) -> Decoded:
    """Registers to an engineering value with quality; never clamps, never raises.

    NaN/Inf and the device's invalid-value markers give a Bad reading with the raw
    words in the message. A value outside the sensor's stated range keeps its value
    and is marked Bad, so a reviewer sees what the device said.
    """
    try:
        raw = decode_raw(registers, spec.data_type, spec.word_order, spec.byte_order)
    except DecodeError as exc:
        hexwords = _hex(registers)
        return Decoded(
            None, Quality.BAD, f"undecodable registers [{hexwords}]: {exc}", Cause.DEVICE
        )
    if isinstance(raw, str):
        return Decoded(raw, Quality.GOOD)
    if isinstance(raw, int) and raw in spec.invalid_raw:
        return Decoded(
            None,
            Quality.BAD,
            f"device invalid-value marker {raw} [{_hex(registers)}]",
            Cause.DEVICE,
        )
    if isinstance(raw, float) and not math.isfinite(raw):
        return Decoded(
            None, Quality.BAD, f"device returned {raw} [{_hex(registers)}]", Cause.DEVICE
        )
    value = raw * spec.scale + spec.offset
    if not math.isfinite(value):
        return Decoded(
            None, Quality.BAD, f"scaled value overflows [{_hex(registers)}]", Cause.COLLECTOR
        )
    lo, hi = spec.valid_min, spec.valid_max
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        return Decoded(
            float(value),
            Quality.BAD,
            f"{value:g} outside the sensor range [{lo}, {hi}] [{_hex(registers)}]",
            Cause.DEVICE,
        )
    return Decoded(float(value), Quality.GOOD)


def value_decoder(spec: ValueSpec) -> Callable[[Sequence[int]], float | Decoded]:
    """:func:`decode_value` specialised for one ``spec``, for the polling hot path.

    The returned function gives the engineering value as a plain ``float`` when it
    decodes Good, and otherwise exactly what ``decode_value`` gives (it is called for
    every outcome but a clean Good one, so messages and causes are the same). Same
    arithmetic as ``decode_value``, so the same value to the bit; the struct codes are
    built once instead of per reading.
    """
    if spec.data_type is DataType.STRING:
        return lambda registers: decode_value(registers, spec)
    count, code = register_count(spec.data_type), _STRUCT[spec.data_type]
    # one packed word per register, bytes in the device's order; then the type's code
    pack = struct.Struct(("<" if spec.byte_order is Order.LITTLE else ">") + "H" * count).pack
    unpack = struct.Struct(code).unpack
    reverse = count > 1 and spec.word_order is Order.LITTLE
    invalid = spec.invalid_raw if code[-1] not in "fd" else frozenset()
    scale, offset = spec.scale, spec.offset
    lo = -math.inf if spec.valid_min is None else spec.valid_min
    hi = math.inf if spec.valid_max is None else spec.valid_max
    isfinite = math.isfinite

    def decode(registers: Sequence[int]) -> float | Decoded:
        try:
            raw = unpack(pack(*(registers[::-1] if reverse else registers)))[0]
        except struct.error:  # wrong count or not 16-bit words: let decode_value say so
            return decode_value(registers, spec)
        if invalid and raw in invalid:
            return decode_value(registers, spec)
        value = raw * scale + offset
        if isfinite(value) and lo <= value <= hi:
            return float(value)
        return decode_value(registers, spec)

    return decode
