"""The register vocabulary of a Modbus tag: data types and byte/word orders.

The configuration names these and the collector's codec decodes with them; they live here,
in the leaf package, so the schema needs nothing from the collector.
"""

from __future__ import annotations

from enum import StrEnum


class DataType(StrEnum):
    """Register data types a tag can have."""

    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"


class Order(StrEnum):
    """Byte order within a word, or word order within a multi-word value."""

    BIG = "big"
    LITTLE = "little"


# 16-bit registers per value of each fixed-size type
_REGISTERS: dict[DataType, int] = {
    DataType.INT16: 1,
    DataType.UINT16: 1,
    DataType.INT32: 2,
    DataType.UINT32: 2,
    DataType.INT64: 4,
    DataType.UINT64: 4,
    DataType.FLOAT32: 2,
    DataType.FLOAT64: 4,
}


def register_count(data_type: DataType, length: int | None = None) -> int:
    """How many 16-bit registers a value of ``data_type`` occupies (``length`` for strings)."""
    if data_type is DataType.STRING:
        if not length or length < 1:
            raise ValueError("a string needs a length in registers of at least 1")
        return length
    return _REGISTERS[data_type]
