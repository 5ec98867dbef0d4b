"""Loading the plant configuration: read the TOML file, validate it, report every error.

The schema is the leaf package :mod:`gmp_edge.config`; this module reads the file and
validates it with the checks only the domain can make (the limit model's, the MQTT link's
topic rules), handed to the schema as validation context. An invalid file refuses to
start with errors naming the file, the key path and the offending value; nothing is
repaired silently and loading never touches the network.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gmp_edge.config import DomainChecks, PlantConfig, SimulationConfig, validation_context
from gmp_edge.errors import GmpEdgeError
from gmp_edge.monitoring.setup import LimitConfigError, build_limit_set
from gmp_edge.mqttlink.topics import TopicError, make_prefix


def _topic_prefix(template: str) -> None:
    """The MQTT link's rules for ``mqtt.topic_prefix`` (ValueError says what is wrong)."""
    try:
        make_prefix(template, "site")
    except TopicError as exc:
        raise ValueError(str(exc)) from None


def _limit_problems(cfg: PlantConfig) -> list[str]:
    """The limit model's verdict on the configured limits, each naming its key path."""
    try:
        build_limit_set(cfg, "check", 0)
    except LimitConfigError as exc:
        return exc.problems
    return []


#: What the loader checks beyond the schema itself.
DOMAIN_CHECKS = DomainChecks(topic_prefix=_topic_prefix, limits=_limit_problems)


class ConfigError(GmpEdgeError):
    """The configuration is invalid; ``problems`` name file, key path and value."""

    def __init__(self, path: Path, problems: list[str]):
        self.path = path
        self.problems = problems
        lines = "\n".join(f"  {path}: {x}" for x in problems)
        super().__init__(f"invalid configuration {path} ({len(problems)} problem(s)):\n{lines}")


def _loc(loc: tuple[Any, ...], data: Any) -> str:
    """Render a pydantic error location as a key path, naming list items by their id."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            label = f"[{part}]"
            if isinstance(node, list) and part < len(node):
                node = node[part]
                if isinstance(node, dict) and "id" in node:
                    label = f"[{part}]({node['id']})"
                elif isinstance(node, dict) and "path" in node:
                    label = f"[{part}]({node['path']})"
            else:
                node = None
            out += label
        else:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif part in ("modbus", "opcua"):  # discriminated-union branch name, not a key
                continue
            else:
                node = None
            out += ("." if out else "") + str(part)
    return out or "(top level)"


_ITEM = re.compile(r"^(areas|rooms|devices|equipment|tags)\[(\d+)\]")


def _label_items(line: str, data: dict[str, Any]) -> str:
    """Add the item's id (or path) to a leading ``section[i]`` so people can find it."""
    m = _ITEM.match(line)
    if not m:
        return line
    items = data.get(m.group(1))
    i = int(m.group(2))
    if not isinstance(items, list) or i >= len(items) or not isinstance(items[i], dict):
        return line
    name = items[i].get("id") or items[i].get("path")
    return line if name is None else f"{m.group(0)}({name}){line[m.end() :]}"


def parse_config(data: dict[str, Any], path: Path) -> PlantConfig:
    """Validate already-parsed TOML; raise :class:`ConfigError` with every problem."""
    try:
        return PlantConfig.model_validate(data, context=validation_context(DOMAIN_CHECKS))
    except ValidationError as exc:
        problems: list[str] = []
        for err in exc.errors(include_url=False):
            where = _loc(tuple(err["loc"]), data)
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "value_error" and where == "(top level)":
                problems.extend(_label_items(line, data) for line in msg.splitlines())
                continue
            value = err.get("input")
            shown = "" if isinstance(value, dict | list) else f" (got {value!r})"
            problems.append(f"{where}: {msg}{shown}")
        raise ConfigError(path, problems) from None


def load_config(path: str | Path) -> tuple[PlantConfig, str]:
    """Load and validate a TOML plant config; returns it with the file's SHA-256.

    Relative paths inside (store, simulation spec) are resolved against the file's folder.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(path, [f"cannot read: {exc.strerror}"]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [f"not valid TOML: {exc}"]) from None
    cfg = parse_config(data, path)
    base = path.resolve().parent
    updates: dict[str, Any] = {}
    if not cfg.store.path.is_absolute():
        updates["store"] = cfg.store.model_copy(update={"path": (base / cfg.store.path).resolve()})
    if cfg.api.tls_certfile is not None and cfg.api.tls_keyfile is not None:
        api = cfg.api.model_copy(
            update={
                "tls_certfile": (base / cfg.api.tls_certfile).resolve(),
                "tls_keyfile": (base / cfg.api.tls_keyfile).resolve(),
            }
        )
        for name, file in (("tls_certfile", api.tls_certfile), ("tls_keyfile", api.tls_keyfile)):
            if file is None or not file.is_file():
                raise ConfigError(path, [f"api.{name}: no such file (got {str(file)!r})"])
        updates["api"] = api
    if cfg.simulation is not None and not cfg.simulation.spec.is_absolute():
        updates["simulation"] = SimulationConfig(spec=(base / cfg.simulation.spec).resolve())
    if updates:
        cfg = cfg.model_copy(update=updates)
    return cfg, hashlib.sha256(raw).hexdigest()
