"""DataValue → Reading: value conversion, timestamps and what a StatusCode says.

Pure functions, no network. A StatusCode carries its severity in bits 30-31 and, when its
InfoType (bits 10-11) is 01 = DataValue, the limit bits 8-9 and the Overflow bit 7
(OPC UA Part 4, 7.39); all of that ends up in the reading's quality and message.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from asyncua import ua

from gmp_edge.collector.reading import Cause, Quality, Reading
from gmp_edge.timefmt import datetime_us

_CODE_MASK = 0xFFFF_0000
_INFOTYPE_MASK = 0x0000_0C00
_INFOTYPE_DATAVALUE = 0x0000_0400
_OVERFLOW_BIT = 0x0000_0080
_LIMIT_MASK = 0x0000_0300
_LIMIT_LOW = 0x0000_0100
_LIMIT_HIGH = 0x0000_0200


def status_name(code: int) -> str:
    """The symbolic name of a StatusCode, ignoring its info bits (overflow, limits)."""
    name, _ = ua.status_codes.get_name_and_doc(code & _CODE_MASK)
    return name


def status_text(code: int) -> str:
    """Name and hex value of a StatusCode, e.g. ``BadNodeIdUnknown (0x80340000)``."""
    return f"{status_name(code)} (0x{code:08X})"


def has_overflow(code: int) -> bool:
    """True when the server's monitored-item queue overflowed before this value."""
    return (code & _INFOTYPE_MASK) == _INFOTYPE_DATAVALUE and bool(code & _OVERFLOW_BIT)


def limit_note(code: int) -> str | None:
    """ "low limit"/"high limit" when the source says the value sits at its limit, else None."""
    if (code & _INFOTYPE_MASK) != _INFOTYPE_DATAVALUE:
        return None
    bits = code & _LIMIT_MASK
    if bits == _LIMIT_LOW:
        return "value at the source's low limit"
    if bits == _LIMIT_HIGH:
        return "value at the source's high limit"
    return None  # none, or "constant": nothing suspicious about the value itself


def datetime_to_us(dt: datetime | None) -> int | None:
    """A UA DateTime as integer µs since the Unix epoch; None when absent or unset.

    asyncua decodes timestamps as aware UTC datetimes; a naive one is taken as UTC.
    The encoded "no timestamp" (0, i.e. 1601-01-01) and anything before 1970 count as
    absent rather than as a real instant.
    """
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    us = datetime_us(dt)
    return us if us > 0 else None


def convert_value(raw: Any) -> tuple[float | str | None, str | None]:
    """A variant's Python value as a reading value, or (None, reason) if unusable.

    Numbers become float, booleans 0.0/1.0, strings stay strings (LocalizedText gives its
    text). NaN/Inf, null and anything else (arrays, structures, byte strings) are
    refused with a reason, never coerced.
    """
    if isinstance(raw, bool):
        return (1.0 if raw else 0.0), None
    if isinstance(raw, int):
        return float(raw), None
    if isinstance(raw, float):
        if not math.isfinite(raw):
            return None, f"device returned {raw}"
        return raw, None
    if isinstance(raw, str):
        return raw, None
    if isinstance(raw, ua.LocalizedText):
        return (raw.Text or ""), None
    if raw is None:
        return None, "device returned no value (null variant)"
    return None, f"unsupported value type {type(raw).__name__}"


def datavalue_to_reading(tag: str, dv: ua.DataValue | None, ts_edge_us: int) -> Reading:
    """One DataValue (from a read or a notification) as a Reading.

    Good → GOOD; Uncertain → UNCERTAIN with the status name as message; Bad → BAD with
    no value and the status code in the message (cause DEVICE). The source timestamp is
    kept, falling back to the server timestamp. An overflow bit (the server discarded
    queued values before this one) or a low/high limit bit makes a Good value Uncertain,
    so the record shows it.
    """
    if dv is None:
        return Reading.bad(tag, ts_edge_us, "server returned no DataValue", Cause.DEVICE)
    code = int(dv.StatusCode.value) if dv.StatusCode is not None else 0
    ts_source = datetime_to_us(dv.SourceTimestamp)
    if ts_source is None:
        ts_source = datetime_to_us(dv.ServerTimestamp)
    notes: list[str] = []
    if has_overflow(code):
        notes.append("server queue overflow: earlier values were discarded")
    limit = limit_note(code)
    if limit:
        notes.append(limit)
    severity = code >> 30
    if severity >= 2:  # Bad (and the reserved 11, which clients treat as Bad)
        message = "; ".join([status_text(code), *notes])
        return Reading(tag, None, Quality.BAD, ts_edge_us, ts_source, message, Cause.DEVICE)
    raw = dv.Value.Value if dv.Value is not None else None
    value, problem = convert_value(raw)
    if problem is not None:
        message = "; ".join([problem, *([status_name(code)] if severity else []), *notes])
        return Reading(tag, None, Quality.BAD, ts_edge_us, ts_source, message, Cause.DEVICE)
    if severity == 1:
        message = "; ".join([status_name(code), *notes])
        return Reading(tag, value, Quality.UNCERTAIN, ts_edge_us, ts_source, message, Cause.DEVICE)
    if notes:
        return Reading(
            tag, value, Quality.UNCERTAIN, ts_edge_us, ts_source, "; ".join(notes), Cause.DEVICE
        )
    return Reading(tag, value, Quality.GOOD, ts_edge_us, ts_source)
