"""Loading the plant configuration: read the TOML file, validate it, report every error.

The schema is the leaf package :mod:`gmp_edge.config`; this module reads the file and
validates it with the checks only the domain can make (the limit model's, the MQTT link's
topic rules), handed to the schema as validation context. An invalid file refuses to
start with errors naming the file, the key path and the offending value; nothing is
repaired silently and loading never touches the network.
"""

from __future__ import annotations

import copy
import hashlib
import re
import tomllib
from collections import defaultdict
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
    """Validate already-parsed TOML; raise :class:`ConfigError` with every problem.

    Every problem of the file at once: when fields are wrong, the checks across sections
    (duplicates, unknown references, overlapping registers, limits) still run, on what is
    left once the wrong fields are taken out (see :func:`_cross_problems_of_the_rest`).
    """
    context = validation_context(DOMAIN_CHECKS)
    try:
        return PlantConfig.model_validate(data, context=context)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        problems = _problems(errors, data)
        if any(not _is_cross_check(e) for e in errors):
            for line in _cross_problems_of_the_rest(data, errors):
                if line not in problems:
                    problems.append(line)
        raise ConfigError(path, problems) from None


def _is_cross_check(err: Any) -> bool:
    return bool(err["type"] == "value_error" and not err["loc"])


def _problems(errors: list[Any], data: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for err in errors:
        msg = err["msg"].removeprefix("Value error, ")
        if _is_cross_check(err):
            problems.extend(_label_items(line, data) for line in msg.splitlines())
            continue
        value = err.get("input")
        shown = "" if isinstance(value, dict | list) else f" (got {value!r})"
        problems.append(f"{_loc(tuple(err['loc']), data)}: {msg}{shown}")
    return problems


_ROUNDS = 8  # a wrong field taken out can reveal a missing one; a few rounds settle it


def _cross_problems_of_the_rest(data: dict[str, Any], errors: list[Any]) -> list[str]:
    """The checks across sections, run on the file without its wrong fields.

    Only for reporting: a wrong field is taken out (its default, if it has one, stands in);
    a list item that cannot stand without it is left out. Problems are named by the key
    paths of the file as written (item indices mapped back). Nothing here is ever run.
    """
    rest = copy.deepcopy(data)
    dropped: dict[str, set[int]] = defaultdict(set)
    for _ in range(_ROUNDS):
        changed = False
        for err in errors:
            if _is_cross_check(err):
                continue
            changed |= _take_out(rest, tuple(err["loc"]), dropped)
        trial, index_of = _without_items(rest, dropped)
        try:
            PlantConfig.model_validate(trial, context=validation_context(DOMAIN_CHECKS))
            return []
        except ValidationError as exc:
            errors = [_in_file(e, index_of) for e in exc.errors(include_url=False)]
        if all(_is_cross_check(e) for e in errors) or not changed:
            break
    lines = [
        line
        for err in errors
        if _is_cross_check(err)
        for line in err["msg"].removeprefix("Value error, ").splitlines()
    ]
    return [_label_items(_original_indices(line, index_of), data) for line in lines]


def _in_file(err: Any, index_of: dict[str, list[int]]) -> Any:
    """An error of the reduced file with its location as in the file as written."""
    loc = tuple(err["loc"])
    if len(loc) >= 2 and isinstance(loc[1], int) and loc[0] in index_of:
        kept = index_of[loc[0]]
        if loc[1] < len(kept):
            err = {**err, "loc": (loc[0], kept[loc[1]], *loc[2:])}
    return err


def _take_out(rest: dict[str, Any], loc: tuple[Any, ...], dropped: dict[str, set[int]]) -> bool:
    """Delete the field at ``loc``; if it is not there (missing, required), leave out the
    list item it belongs to. Returns whether anything changed."""
    node: Any = rest
    item: tuple[str, int] | None = None
    for depth, part in enumerate(loc[:-1]):
        if isinstance(part, int) and isinstance(node, list) and part < len(node):
            if depth == 1 and isinstance(loc[0], str):
                item = (loc[0], part)
            node = node[part]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        elif part in ("modbus", "opcua"):  # a discriminated union's branch, not a key
            continue
        else:
            node = None
            break
    leaf = loc[-1] if loc else None
    if isinstance(node, dict) and leaf in node:
        del node[leaf]
        return True
    if item is None and len(loc) >= 2 and isinstance(loc[1], int):
        item = (str(loc[0]), loc[1])
    if item is not None and item[1] not in dropped[item[0]]:
        dropped[item[0]].add(item[1])
        return True
    return False


def _without_items(
    rest: dict[str, Any], dropped: dict[str, set[int]]
) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """``rest`` without the dropped list items, and per section the original index of each
    item left."""
    out = dict(rest)
    index_of: dict[str, list[int]] = {}
    for section, gone in dropped.items():
        items = rest.get(section)
        if isinstance(items, list):
            kept = [i for i in range(len(items)) if i not in gone]
            out[section] = [items[i] for i in kept]
            index_of[section] = kept
    return out, index_of


_ANY_ITEM = re.compile(r"\b(areas|rooms|devices|equipment|tags|limits|production)\[(\d+)\]")


def _original_indices(line: str, index_of: dict[str, list[int]]) -> str:
    def back(m: re.Match[str]) -> str:
        kept = index_of.get(m.group(1))
        i = int(m.group(2))
        return m.group(0) if kept is None or i >= len(kept) else f"{m.group(1)}[{kept[i]}]"

    return _ANY_ITEM.sub(back, line)


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
