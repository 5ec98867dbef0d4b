"""Typed register tables: fields at addresses, values by name, encoded on read.

A device describes each table (holding, input) as a list of :class:`Field`. The
:class:`RegisterBank` keeps one value per field and turns a ``(address, count)`` request into
register words, refusing any address no field covers (Modbus exception 02). It also knows
how to return *garbage* for selected registers, because a garbage float must be a NaN in the
field's own word order while a garbage integer is 0x8000.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from gmp_edge.simulators import encoding as enc
from gmp_edge.simulators.encoding import WordOrder


class Kind(StrEnum):
    """Data type of a field."""

    U16 = "u16"
    S16 = "s16"
    U32 = "u32"
    S32 = "s32"
    F32 = "f32"
    ASCII = "ascii"


Value = int | float | str


@dataclass(frozen=True)
class Field:
    """One value in a register table: name, first PDU address, type, word order, size."""

    name: str
    address: int
    kind: Kind
    order: WordOrder = WordOrder.ABCD
    length: int = 0  # registers; only needed for ASCII, derived from the kind otherwise
    writable: bool = False

    @property
    def size(self) -> int:
        """Number of registers the field occupies."""
        if self.kind is Kind.ASCII:
            return self.length
        return 1 if self.kind in (Kind.U16, Kind.S16) else 2

    @property
    def addresses(self) -> range:
        """The PDU addresses the field occupies."""
        return range(self.address, self.address + self.size)

    def encode(self, value: Value) -> list[int]:
        """Encode ``value`` into this field's registers."""
        match self.kind:
            case Kind.U16:
                return enc.encode_u16(int(value))
            case Kind.S16:
                return enc.encode_s16(int(value))
            case Kind.U32:
                return enc.encode_u32(int(value), self.order)
            case Kind.S32:
                return enc.encode_s32(int(value), self.order)
            case Kind.F32:
                return enc.encode_f32(float(value), self.order)
            case Kind.ASCII:
                return enc.encode_ascii(str(value), self.length)
        raise ValueError(f"unknown kind {self.kind!r}")  # pragma: no cover

    def decode(self, words: Sequence[int]) -> Value:
        """Decode this field's registers into a value."""
        match self.kind:
            case Kind.U16:
                return enc.decode_u16(words)
            case Kind.S16:
                return enc.decode_s16(words)
            case Kind.U32:
                return enc.decode_u32(words, self.order)
            case Kind.S32:
                return enc.decode_s32(words, self.order)
            case Kind.F32:
                return enc.decode_f32(words, self.order)
            case Kind.ASCII:
                return enc.decode_ascii(words)
        raise ValueError(f"unknown kind {self.kind!r}")  # pragma: no cover

    def garbage(self) -> list[int]:
        """What a broken transmitter returns: NaN for floats, 0x8000 in every int register."""
        if self.kind is Kind.F32:
            return enc.nan_words(self.order)
        return [enc.GARBAGE_INT] * self.size


class RegisterBank:
    """One register table of a device (holding or input)."""

    def __init__(self, fields: Iterable[Field]) -> None:
        self.fields: dict[str, Field] = {}
        self._by_address: dict[int, Field] = {}
        self._values: dict[str, Value] = {}
        self._words: dict[str, list[int]] = {}  # encoded cache, so reads do no struct work
        self.garbage: frozenset[int] = frozenset()
        for field in fields:
            if field.name in self.fields:
                raise ValueError(f"duplicate field name {field.name!r}")
            for address in field.addresses:
                if address in self._by_address:
                    raise ValueError(f"field {field.name!r} overlaps at address {address}")
                self._by_address[address] = field
            self.fields[field.name] = field
            self.set(field.name, "" if field.kind is Kind.ASCII else 0)

    def set(self, name: str, value: Value) -> None:
        """Set a field's value (encoded immediately, so a bad value fails here, not on read)."""
        field = self.fields[name]
        self._words[name] = field.encode(value)
        self._values[name] = value

    def get(self, name: str) -> Value:
        """The current value of a field."""
        return self._values[name]

    def covers(self, address: int, count: int) -> bool:
        """True when every address in the range belongs to some field."""
        return all(a in self._by_address for a in range(address, address + count))

    def read(self, address: int, count: int) -> list[int] | None:
        """Registers ``address .. address+count-1``, or None when any address is unmapped."""
        if not self.covers(address, count):
            return None
        out: list[int] = []
        for a in range(address, address + count):
            field = self._by_address[a]
            garbled = self.garbage and any(x in self.garbage for x in field.addresses)
            words = field.garbage() if garbled else self._words[field.name]
            out.append(words[a - field.address])
        return out

    def prepare_write(self, address: int, values: Sequence[int]) -> dict[str, Value] | None:
        """The field values a write would produce, without storing anything.

        Returns None when any register is unmapped or read-only. A partial write of a 32-bit
        field keeps its other word, like the Lighthouse "write only the low register" advice.
        """
        addresses = range(address, address + len(values))
        if not all(a in self._by_address and self._by_address[a].writable for a in addresses):
            return None
        touched: dict[str, list[int]] = {}
        for a, word in zip(addresses, values, strict=True):
            field = self._by_address[a]
            words = touched.setdefault(field.name, list(self._words[field.name]))
            words[a - field.address] = enc.check_register(word)
        return {name: self.fields[name].decode(words) for name, words in touched.items()}
