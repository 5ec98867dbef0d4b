"""MQTT payloads (pure): JSON bodies of readings, events and status, the MES batch command.

Every body is a JSON object with a ``schema`` name and version (``gmp-edge/reading/1``);
times are UTC ISO 8601 with a ``Z`` and microseconds. Events carry ``seq``, the id of their
row in the edge box's database, so a consumer can drop the duplicates that at-least-once
delivery and a replay after a restart produce. The JSON Schemas below are the contract
(docs/decisions/0013-mqtt.md repeats them); :func:`validate` checks a body against one.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gmp_edge.collector.reading import Quality
from gmp_edge.deviations.batch import batch_id_problem
from gmp_edge.errors import GmpEdgeError
from gmp_edge.historian.store import StoredReading
from gmp_edge.timefmt import iso, parse_iso

_ISO_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"
_QUALITY = {Quality.GOOD: "good", Quality.UNCERTAIN: "uncertain", Quality.BAD: "bad"}


def encode(body: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON with sorted keys (identical bodies are identical bytes)."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def _json_value(v: float | str | None) -> float | str | None:
    # JSON has no NaN/Infinity; a non-finite number goes out as text rather than as a lie
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


# ----------------------------------------------------------------------------- bodies

READING = "gmp-edge/reading/1"
ALARM_EVENT = "gmp-edge/alarm-event/1"
DEVIATION_EVENT = "gmp-edge/deviation-event/1"
EDGE_STATUS = "gmp-edge/edge-status/1"
ROOM_STATUS = "gmp-edge/room-status/1"
DEVICE_STATUS = "gmp-edge/device-status/1"
COMMAND_REJECTED = "gmp-edge/command-rejected/1"


def reading_body(seq: int, r: StoredReading, unit: str) -> dict[str, Any]:
    """A reading: ``ts`` is the time the value belongs to (device's if known, else edge's)."""
    return {
        "schema": READING,
        "seq": seq,
        "tag": r.tag,
        "ts": iso(r.ts_us),
        "ts_edge": iso(r.ts_edge_us),
        "ts_source": None if r.ts_source_us is None else iso(r.ts_source_us),
        "value": _json_value(r.value),
        "unit": unit,
        "quality": _QUALITY[Quality(r.quality)],
        "message": r.message,
        "cause": r.cause,
    }


def alarm_event_body(seq: int, transition: Mapping[str, Any], room: str) -> dict[str, Any]:
    """An alarm transition (``alarms.model.Transition.to_dict()``) as an event."""
    return {
        "schema": ALARM_EVENT,
        "seq": seq,
        "alarm_id": transition["alarm_id"],
        "tag": transition["tag"],
        "room": room,
        "priority": transition["priority"],
        "event": transition["event"],
        "from_state": transition["from_state"],
        "to_state": transition["to_state"],
        "actor": transition["actor"],
        "ts": iso(int(transition["at_us"])),
        "reason": transition.get("reason", ""),
        "detail": dict(transition.get("detail") or {}),
    }


def deviation_event_body(
    seq: int,
    action: str,
    deviation_id: str,
    ts_us: int,
    actor: str,
    reason: str,
    changes: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """A deviation audit entry (``record_type='deviation'``) as an event; ``seq`` is its
    audit sequence number, ``changes`` its new values."""
    return {
        "schema": DEVIATION_EVENT,
        "seq": seq,
        "deviation_id": deviation_id,
        "action": action.removeprefix("deviation."),
        "ts": iso(ts_us),
        "actor": actor,
        "reason": reason,
        "changes": dict(changes or {}),
    }


def edge_status_body(
    online: bool,
    site: str,
    client_id: str,
    ts_us: int | None = None,
    reason: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """This box's status: birth (online), periodic update, clean stop or last will.

    The last will is registered before the connection exists, so it has no ``ts``.
    """
    body: dict[str, Any] = {
        "schema": EDGE_STATUS,
        "online": online,
        "site": site,
        "client_id": client_id,
    }
    if ts_us is not None:
        body["ts"] = iso(ts_us)
    if reason is not None:
        body["reason"] = reason
    if extra:
        body.update({k: v for k, v in extra.items() if k not in body})
    return body


def status_body(kind: str, name: str, payload: Mapping[str, Any], ts_us: int) -> dict[str, Any]:
    """Retained room or device status: the caller's fields plus schema, name and ``ts``.

    ``kind`` is ``room`` or ``device``; the caller may give its own ``ts`` (ISO text).
    """
    schema = {"room": ROOM_STATUS, "device": DEVICE_STATUS}[kind]
    clash = sorted({"schema", kind} & set(payload))
    if clash:
        raise ValueError(f"{kind} status payload must not set {', '.join(clash)}")
    return {"ts": iso(ts_us), **payload, "schema": schema, kind: name}


def rejected_body(reason: str, raw: bytes, ts_us: int) -> dict[str, Any]:
    """A refused command: why, and (the start of) what was received."""
    return {
        "schema": COMMAND_REJECTED,
        "ts": iso(ts_us),
        "reason": reason,
        "received": raw[:2000].decode("utf-8", errors="replace"),
    }


# ----------------------------------------------------------------------------- commands


class CommandError(GmpEdgeError, ValueError):
    """A command was refused; the message is the reason published to ``commands/rejected``."""


_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$")


@dataclass(frozen=True, slots=True)
class BatchCommand:
    """An MES batch command: start or end ``batch_id``.

    ``at_us`` is the ``at`` the MES gave (ISO with zone) or the time it was received.
    ``start`` names the product and at least one room or piece of equipment; ``end`` needs
    only the batch id (other fields, if given, are passed on).
    """

    command: str  # "start" | "end"
    batch_id: str
    at_us: int
    product: str = ""
    rooms: tuple[str, ...] = ()
    equipment: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)


_COMMAND_KEYS = {"command", "batch_id", "product", "rooms", "equipment", "at"}


def _ids(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    v = data.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, str) and _ID.match(x) for x in v):
        raise CommandError(f"{key} must be a list of ids (letters, digits, _ . : / -)")
    if len(set(v)) != len(v):
        raise CommandError(f"{key} has duplicates")
    return tuple(v)


def parse_batch_command(raw: bytes, received_us: int) -> BatchCommand:
    """Validate an MES batch command; :class:`CommandError` says what is wrong with it."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CommandError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CommandError("must be a JSON object")
    unknown = sorted(set(data) - _COMMAND_KEYS)
    if unknown:
        raise CommandError(f"unknown field(s): {', '.join(unknown)}")
    command = data.get("command")
    if command not in ("start", "end"):
        raise CommandError(f"command must be 'start' or 'end', not {command!r}")
    batch_id = data.get("batch_id")
    problem = batch_id_problem(batch_id)
    if problem or not isinstance(batch_id, str):
        raise CommandError(f"batch_id: {problem}")
    product = data.get("product", "")
    if not isinstance(product, str) or len(product) > 256:
        raise CommandError("product must be a string of at most 256 characters")
    rooms, equipment = _ids(data, "rooms"), _ids(data, "equipment")
    if command == "start":
        if not product.strip():
            raise CommandError("start needs a product")
        if not rooms and not equipment:
            raise CommandError("start needs at least one room or piece of equipment")
    at_us = received_us
    if "at" in data:
        if not isinstance(data["at"], str):
            raise CommandError("at must be an ISO 8601 time with zone")
        try:
            at_us = parse_iso(data["at"])
        except ValueError as exc:
            raise CommandError(f"at: {exc}") from None
    return BatchCommand(command, batch_id, at_us, product, rooms, equipment, data)


# ----------------------------------------------------------------------------- schemas

_TS: dict[str, Any] = {"type": "string", "pattern": _ISO_PATTERN}
_TS_OR_NULL: dict[str, Any] = {"type": ["string", "null"], "pattern": _ISO_PATTERN}
_SEQ: dict[str, Any] = {"type": "integer", "minimum": 1}
_STR: dict[str, Any] = {"type": "string"}


def _obj(schema: str, props: dict[str, Any], optional: Sequence[str] = ()) -> dict[str, Any]:
    props = {"schema": {"const": schema}, **props}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": schema,
        "type": "object",
        "required": [k for k in props if k not in optional],
        "properties": props,
        "additionalProperties": False,
    }


SCHEMAS: dict[str, dict[str, Any]] = {
    READING: _obj(
        READING,
        {
            "seq": _SEQ,
            "tag": _STR,
            "ts": _TS,
            "ts_edge": _TS,
            "ts_source": _TS_OR_NULL,
            "value": {"type": ["number", "string", "null"]},
            "unit": _STR,
            "quality": {"enum": ["good", "uncertain", "bad"]},
            "message": {"type": ["string", "null"]},
            "cause": {"type": ["string", "null"]},
        },
    ),
    ALARM_EVENT: _obj(
        ALARM_EVENT,
        {
            "seq": _SEQ,
            "alarm_id": _STR,
            "tag": _STR,
            "room": _STR,
            "priority": {"enum": ["critical", "high", "medium", "low"]},
            "event": _STR,
            "from_state": _STR,
            "to_state": _STR,
            "actor": _STR,
            "ts": _TS,
            "reason": _STR,
            "detail": {"type": "object"},
        },
    ),
    DEVIATION_EVENT: _obj(
        DEVIATION_EVENT,
        {
            "seq": _SEQ,
            "deviation_id": _STR,
            "action": _STR,
            "ts": _TS,
            "actor": _STR,
            "reason": _STR,
            "changes": {"type": "object"},
        },
    ),
    EDGE_STATUS: {
        **_obj(
            EDGE_STATUS,
            {
                "online": {"type": "boolean"},
                "site": _STR,
                "client_id": _STR,
                "ts": _TS,
                "reason": _STR,
            },
            optional=("ts", "reason"),
        ),
        "additionalProperties": True,  # counters in the periodic update
    },
    ROOM_STATUS: {
        **_obj(ROOM_STATUS, {"room": _STR, "ts": _TS}),
        "additionalProperties": True,  # the caller's fields
    },
    DEVICE_STATUS: {
        **_obj(DEVICE_STATUS, {"device": _STR, "ts": _TS}),
        "additionalProperties": True,
    },
    COMMAND_REJECTED: _obj(COMMAND_REJECTED, {"ts": _TS, "reason": _STR, "received": _STR}),
}

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
    "object": (dict,),
    "array": (list,),
}


def validate(body: Any, schema: Mapping[str, Any], where: str = "$") -> list[str]:
    """Problems of ``body`` against ``schema`` (empty when valid).

    Covers the JSON Schema keywords the schemas above use (type, const, enum, pattern,
    minimum, required, properties, additionalProperties), so tests and consumers can check
    conformance without a JSON Schema library.
    """
    problems: list[str] = []
    if "const" in schema and body != schema["const"]:
        problems.append(f"{where}: {body!r} is not {schema['const']!r}")
    if "enum" in schema and body not in schema["enum"]:
        problems.append(f"{where}: {body!r} not in {schema['enum']}")
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        ok = any(
            isinstance(body, _TYPES[n]) and not (n != "boolean" and isinstance(body, bool))
            for n in names
        )
        if not ok:
            return [*problems, f"{where}: {type(body).__name__} is not {'/'.join(names)}"]
    if isinstance(body, str) and "pattern" in schema and not re.search(schema["pattern"], body):
        problems.append(f"{where}: {body!r} does not match {schema['pattern']}")
    if isinstance(body, int | float) and "minimum" in schema and body < schema["minimum"]:
        problems.append(f"{where}: {body} < {schema['minimum']}")
    if isinstance(body, dict):
        props = schema.get("properties", {})
        problems += [f"{where}: missing {k!r}" for k in schema.get("required", []) if k not in body]
        for k, v in body.items():
            if k in props:
                problems += validate(v, props[k], f"{where}.{k}")
            elif schema.get("additionalProperties", True) is False:
                problems.append(f"{where}: unexpected {k!r}")
    return problems
