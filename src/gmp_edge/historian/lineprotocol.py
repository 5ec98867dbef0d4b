"""InfluxDB line protocol for stored readings and events (pure: no I/O).

One reading becomes one point of measurement ``reading``::

    reading,area=..,equipment=..,grade=..,kind=..,room=..,site=..,tag=<signal>,unit=..
        value=21.5,quality="good",quality_code=0i <ts_us * 1000>

The series key is the tag's identity (site/area/room/equipment/signal plus grade, unit and
kind), the timestamp is the reading's own, so replaying a reading after a crash overwrites
the same point instead of adding one (docs/decisions/0003, 0012).

Escaping, checked against influxd 1.6: commas, spaces and equals signs are backslash-escaped
in tag keys, tag values and field keys; double quotes and backslashes in string fields.
Line protocol cannot carry a newline, CR or tab in a tag, and InfluxDB 1.x and 2.x disagree
about ``\\\\`` in tag values (1.x keeps both backslashes), while a trailing backslash cannot be
written at all; so in tags those characters are replaced (whitespace by a space, a backslash
by ``/``). Empty tag values are not allowed by line protocol: such tags are left out. In
string fields a newline or CR becomes the two characters ``\\n`` / ``\\r``: InfluxDB 1.x
reads quoted newlines, but 2.x documents them as unsupported and VictoriaMetrics silently
drops the point (measured). The original text stays in the local store.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from gmp_edge.collector.reading import Quality

if TYPE_CHECKING:
    from gmp_edge.config import PlantConfig
    from gmp_edge.historian.store import StoredReading

MEASUREMENT = "reading"
_QUALITY_TEXT = {q: f'"{q.name.lower()}"' for q in Quality}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

_TAG_TABLE = str.maketrans(
    {",": "\\,", " ": "\\ ", "=": "\\=", "\\": "/", "\n": "\\ ", "\r": "\\ ", "\t": "\\ "}
)
_MEASUREMENT_TABLE = str.maketrans(
    {",": "\\,", " ": "\\ ", "\\": "/", "\n": "\\ ", "\r": "\\ ", "\t": "\\ "}
)
# a newline cannot be carried portably (InfluxDB 2.x documents it as unsupported and
# VictoriaMetrics drops the point while answering 204): written as the text "\\n"
_STRING_TABLE = str.maketrans({'"': '\\"', "\\": "\\\\", "\n": "\\\\n", "\r": "\\\\r"})


@dataclass(frozen=True, slots=True)
class TagMeta:
    """Where a tag sits in the plant and what it measures: the tags of its InfluxDB series."""

    site: str
    area: str
    room: str
    grade: str
    equipment: str
    signal: str
    unit: str
    kind: str

    @classmethod
    def from_path(cls, path: str, unit: str = "", kind: str = "", grade: str = "") -> TagMeta:
        """Metadata from an ISA-95 path ``site/area/room/equipment/signal`` alone.

        A path with fewer segments fills the missing ones with ``""`` (left out of the
        point); extra segments stay in the signal so that nothing is lost.
        """
        parts = path.split("/", 4)
        parts += [""] * (5 - len(parts))
        site, area, room, equipment, signal = parts
        return cls(site, area, room, grade, equipment, signal, unit, kind)


def meta_from_config(cfg: PlantConfig) -> dict[str, TagMeta]:
    """Series metadata of every configured tag, by tag path (room grade from the rooms)."""
    grades = {r.id: (r.grade.value if r.grade is not None else "") for r in cfg.rooms}
    out: dict[str, TagMeta] = {}
    for t in cfg.tags:
        meta = TagMeta.from_path(t.path, t.unit, t.kind.value)
        out[t.path] = TagMeta(
            meta.site,
            meta.area,
            meta.room,
            grades.get(meta.room, ""),
            meta.equipment,
            meta.signal,
            meta.unit,
            meta.kind,
        )
    return out


def escape_tag(s: str) -> str:
    """A tag key or value (also a field key) made safe for line protocol."""
    return s.translate(_TAG_TABLE)


def escape_measurement(s: str) -> str:
    """A measurement name made safe for line protocol."""
    return s.translate(_MEASUREMENT_TABLE)


def quote_string(s: str) -> str:
    """A string field value, quoted and escaped."""
    return '"' + s.translate(_STRING_TABLE) + '"'


def format_float(x: float) -> str:
    """A finite float as line protocol writes it: always with a '.' or exponent (``21.0``)."""
    if not math.isfinite(x):
        raise ValueError(f"line protocol cannot carry {x!r}")
    return repr(float(x))  # shortest round-trip repr: 21.0, 1e+16, 5e-324


def _tag_set(tags: Mapping[str, str]) -> str:
    # sorted by key, as InfluxDB stores them (saves it the sort); empty values left out
    return "".join(f",{escape_tag(k)}={escape_tag(v)}" for k, v in sorted(tags.items()) if k and v)


@lru_cache(maxsize=65_536)
def series_prefix(meta: TagMeta) -> str:
    """``reading,<tags>`` of a tag's series, followed by the space before the fields."""
    tags = {
        "site": meta.site,
        "area": meta.area,
        "room": meta.room,
        "grade": meta.grade,
        "equipment": meta.equipment,
        "tag": meta.signal,
        "unit": meta.unit,
        "kind": meta.kind,
    }
    return MEASUREMENT + _tag_set(tags) + " "


def numeric_value(value: float | str | None) -> float | None:
    """The value as a finite float, or None (text, missing, NaN, inf, too large for a float)."""
    if value is None or isinstance(value, str):
        return None
    try:
        x = float(value)
    except (OverflowError, TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def encode_reading(r: StoredReading, meta: TagMeta) -> str:
    """One stored reading as a line of measurement ``reading``.

    Fields: ``value`` (float, only for a finite number), ``value_text`` (text values),
    ``quality`` ("good"/"uncertain"/"bad"), ``quality_code`` (0/1/2, integer), ``message``
    and ``cause`` when set. A Bad reading without a value still becomes a point (its quality
    fields) so that gaps are visible downstream; a non-finite number is sent without value.
    """
    return encode_in_series(r, series_prefix(meta))


def good_number_line(prefix: str, value: float, ts_us: int) -> str:
    """The line of the commonest reading, a Good finite float without message or cause."""
    return f'{prefix}value={value!r},quality="good",quality_code=0i {ts_us * 1000}'


def encode_in_series(r: StoredReading, prefix: str) -> str:
    """:func:`encode_reading` with the series' ``prefix`` (:func:`series_prefix`) already
    known: a forwarder keeps it per tag path instead of hashing the metadata a reading."""
    value = r.value
    quality = r.quality
    ts = r.ts_us * 1000
    # fast path: the commonest row by far, a Good float without message
    if (
        type(value) is float
        and value - value == 0.0  # finite: NaN and inf give NaN
        and quality is Quality.GOOD
        and r.message is None
        and r.cause is None
    ):
        return good_number_line(prefix, value, r.ts_us)
    fields: list[str] = []
    x = numeric_value(value)
    if x is not None:
        fields.append(f"value={x!r}")
    elif isinstance(value, str):
        fields.append(f"value_text={quote_string(value)}")
    q = Quality(quality)
    fields.append(f"quality={_QUALITY_TEXT[q]},quality_code={int(q)}i")
    if r.message is not None:
        fields.append(f"message={quote_string(r.message)}")
    if r.cause is not None:
        fields.append(f"cause={quote_string(str(r.cause))}")
    return f"{prefix}{','.join(fields)} {ts}"


FieldValue = float | int | bool | str


def _field(v: FieldValue) -> str:
    if isinstance(v, bool):  # before int: bool is an int
        return "true" if v else "false"
    if isinstance(v, int):
        if not _INT64_MIN <= v <= _INT64_MAX:
            raise ValueError(f"integer field {v} does not fit in 64 bits")
        return f"{v}i"
    if isinstance(v, float):
        return format_float(v)
    if isinstance(v, str):
        return quote_string(v)
    raise TypeError(f"unsupported field type {type(v).__name__}")


def encode_event(
    measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue | None], ts_us: int
) -> str:
    """A line for an alarm or deviation event (or any other point).

    ``int`` fields are written as integers (``i``), ``float`` as floats (``21.0``), ``bool``
    as booleans; ``None`` fields are left out. Raises ValueError when no field remains, a
    float is not finite or an int does not fit in 64 bits: line protocol cannot carry them.
    """
    if not measurement:
        raise ValueError("empty measurement")
    if any(not k for k in fields):
        raise ValueError(f"{measurement}: empty field key")
    parts = [f"{escape_tag(k)}={_field(v)}" for k, v in fields.items() if v is not None]
    if not parts:
        raise ValueError(f"{measurement}: a point needs at least one field")
    return f"{escape_measurement(measurement)}{_tag_set(tags)} {','.join(parts)} {ts_us * 1000}"
