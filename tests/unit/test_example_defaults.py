"""examples/plant.toml states the default of every configuration key.

The test walks the schema (every model reachable from ``PlantConfig``) and, for each key
that has a default, looks in the example's section for that key given with its default:
``key = <default>`` (commented out or not) or, where the example sets another value,
``default: <default>`` in the comment on the key's line. A key whose default is unset is shown
commented out. Sections are found by their headers; a commented header (``# [mqtt]``)
documents a section the example leaves out, and ``# [tags.modbus]`` an inline table.
"""

from __future__ import annotations

import re
import tomllib
import typing
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from gmp_edge.config import PlantConfig

EXAMPLE = Path(__file__).parents[2] / "examples" / "plant.toml"
_HEADER = re.compile(r"^\s*#?\s*\[\[?([A-Za-z0-9_.]+)\]\]?(\s.*)?$")
_KEY = re.compile(r"^\s*(#\s*)?([A-Za-z0-9_]+)\s*=\s*(.*)$")


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in typing.get_args(annotation) for m in _models_in(a)]


def schema_defaults(model: type[BaseModel], section: str = "") -> list[tuple[str, str, Any]]:
    """(section, key, default) of every key with a default; nested models are sections."""
    out: list[tuple[str, str, Any]] = []
    for name, field in model.model_fields.items():
        inner = _models_in(field.annotation)
        if inner:
            for m in inner:
                out += schema_defaults(m, f"{section}.{name}" if section else name)
        elif not field.is_required():
            out.append((section, name, field.get_default(call_default_factory=True)))
    return out


def sections(text: str) -> dict[str, list[str]]:
    """The example's lines by section header (all blocks of an array of tables together)."""
    out: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        m = _HEADER.match(line)
        if m:
            current = m.group(1)
            continue
        out.setdefault(current, []).append(line)
    return out


def _value(text: str) -> tuple[bool, Any]:
    """(parsed, value) of a TOML value, trying shorter prefixes of trailing prose."""
    text = text.strip()
    candidates = [text, *(text.split(sep, 1)[0] for sep in (";", ",", " (", " ")), text]
    for c in candidates:
        try:
            return True, tomllib.loads(f"v = {c}")["v"]
        except tomllib.TOMLDecodeError:
            continue
    return False, None


def _plain(default: Any) -> Any:
    if isinstance(default, Enum):
        return default.value
    if isinstance(default, Path):
        return str(default)
    return default


def _same(value: Any, default: Any) -> bool:
    default = _plain(default)
    if isinstance(default, bool) or isinstance(value, bool):
        return type(value) is type(default) and value == default
    return bool(value == default)


def stated(lines: list[str], key: str, default: Any) -> bool:
    """Whether ``lines`` give ``key`` with ``default``."""
    for line in lines:
        m = _KEY.match(line)
        if m is None or m.group(2) != key:
            continue
        commented, rest = m.group(1) is not None, m.group(3)
        at = rest.find("default:")
        if at >= 0 and "#" in rest[:at]:
            word = rest[at + len("default:") :].strip()
            if default is None and word.startswith("unset"):
                return True
            ok, v = _value(word)
            if ok and default is not None and _same(v, default):
                return True
        if default is None:
            if commented:
                return True
            continue
        ok, v = _value(rest)
        if ok and _same(v, default):
            return True
    return False


def test_the_walk_sees_nested_sections_and_both_device_kinds():
    found = {(s, k) for s, k, _ in schema_defaults(PlantConfig)}
    for expected in [
        ("devices", "float_word_order"),
        ("devices", "security_mode"),
        ("tags.modbus", "word_order"),
        ("mqtt.readings", "mode"),
        ("notify.webhooks", "retries"),
        ("limits.trend", "window"),
    ]:
        assert expected in found


def test_stated_reads_the_conventions():
    lines = [
        "port = 15020                     # default: 502",
        '# topic_prefix = "gmp-edge/{site}"',
        "# retention_days = 3650          # unset = keep forever",
        "inclusive = false",
        "gzip = 1",
    ]
    assert stated(lines, "port", 502)
    assert stated(lines, "topic_prefix", "gmp-edge/{site}")
    assert stated(lines, "retention_days", None)
    assert stated(lines, "inclusive", False)
    assert not stated(lines, "port", 503)
    assert not stated(lines, "gzip", True)  # 1 is not true
    assert not stated(lines, "missing", 0)


def test_example_states_every_default():
    by_section = sections(EXAMPLE.read_text(encoding="utf-8"))
    missing = [
        f"[{section or '(top level)'}] {key} = {_plain(default)!r}"
        for section, key, default in schema_defaults(PlantConfig)
        if not stated(by_section.get(section, []), key, default)
    ]
    assert not missing, "examples/plant.toml does not state these defaults:\n" + "\n".join(missing)
