"""Issue 14: no hostile value in any field of any operation is a 5xx.

The OpenAPI document of the app (``app.openapi()``) is walked: every numeric and date-time
query, path and body field of every operation gets every hostile value below, one at a time,
in an otherwise well-formed request sent by a signed-in person whose role may call the
operation (session cookie and CSRF token). String fields get very long strings. Numbers go
into bodies as raw JSON tokens, spelt as written here (``NaN``, ``Infinity``, ``1e309``,
``-0.0`` ...), so the strict reader in ``gmp_edge.api.strict_json`` is exercised too.

Every answer must be below 500. The same slots and values drive the schemathesis run in
``tests/unit/test_api_fuzz.py`` (through a ``flatmap_case`` hook); this walk is the one that
is exhaustive: each value reaches each slot, in a fixed order, without a random draw.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.edge.api_wiring import build_api
from gmp_edge.edge.service import EdgeService
from gmp_edge.historian.store import Store
from gmp_edge.identity.roles import Permission, Role, allowed
from tests.unit.conftest import TEMP, small_plant

with warnings.catch_warnings():  # starlette asks for httpx2, which is not on PyPI for us yet
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ADMIN_PW = "Vault-Keeper-2026!"
PW = "People-Pass-2026!"
ROOM = TEMP.split("/")[2]

# --- the hostile values -----------------------------------------------------------------------

#: numbers as raw JSON tokens (in a body) or as the text of a query or path parameter
NON_FINITE = ("NaN", "Infinity", "-Infinity", "1e309")
HUGE = (str(2**63), str(2**64), str(10**400))
ZERO_AND_TINY = ("-0", "-0.0", "1e-9", "5e-324")
NUMBERS = NON_FINITE + HUGE + ZERO_AND_TINY

#: times at the edges of what a datetime holds, with offsets that push them over the edge,
#: and times that do not exist
EDGE_TIMES = (
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59.999999Z",
    "0000-01-01T00:00:00Z",
    "0000-12-31T23:59:59-14:00",
    "1969-12-31T23:59:59.999999Z",
    "2016-12-31T23:59:60Z",
    "2026-02-30T00:00:00Z",
    "2026-02-30",
)

#: very long strings: far over every maxLength of the schema, just under the body limit (64 KiB)
LONG_STRINGS = ("x" * 60_000, "\u00e9" * 30_000)
#: in a query or path: far over every maxLength too, within what a URL component may hold
#: (64 KiB in httpx; "\u00e9" is six characters percent-encoded)
LONG_URL_STRINGS = ("x" * 16_000, "\u00e9" * 4_000)

#: what a JSON body holds where the hostile token goes (replaced in the encoded text)
SENTINEL = "\u0000hostile\u0000"


@dataclass(frozen=True)
class Slot:
    """One field of one operation that takes hostile values."""

    method: str
    path: str
    location: str  # "query", "path" or "body"
    name: str  # the parameter, or the body field as a dotted path (limits.0.deadband)
    kind: str  # "number", "date-time" or "string"
    steps: tuple[tuple[str | int, dict[str, Any]], ...] = ()  # body: key and schema per level

    @property
    def id(self) -> str:
        return f"{self.method} {self.path} {self.location}:{self.name}"


def values_for(slot: Slot) -> tuple[str, ...]:
    """The hostile values of a slot: JSON tokens for a body, texts for query and path."""
    if slot.kind == "number":
        return NUMBERS
    if slot.kind == "date-time":
        if slot.location == "body":  # a datetime field takes a number too (seconds or ms)
            return tuple(json.dumps(t) for t in EDGE_TIMES) + NUMBERS
        return EDGE_TIMES + NUMBERS
    if slot.location == "body":
        return tuple(json.dumps(s, ensure_ascii=False) for s in LONG_STRINGS)
    return LONG_URL_STRINGS


# --- walking the schema -----------------------------------------------------------------------


class Spec:
    """The OpenAPI document with its references resolved on demand."""

    def __init__(self, document: dict[str, Any]):
        self.document = document
        self.components = document.get("components", {}).get("schemas", {})

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.components[schema["$ref"].rsplit("/", 1)[1]]
        return schema

    def alternatives(self, schema: dict[str, Any]) -> list[dict[str, Any]]:
        """The non-null branches of a schema (itself when it has no anyOf/oneOf)."""
        schema = self.resolve(schema)
        branches = schema.get("anyOf") or schema.get("oneOf")
        if not branches:
            return [schema]
        out = []
        for b in branches:
            out += [a for a in self.alternatives(b) if a.get("type") != "null"]
        return out

    def operations(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        for path, ops in self.document["paths"].items():
            for method, op in ops.items():
                yield method.upper(), path, op

    def body_schema(self, op: dict[str, Any]) -> dict[str, Any] | None:
        content = op.get("requestBody", {}).get("content", {}).get("application/json")
        return None if content is None else self.resolve(content["schema"])


def kind_of(schema: dict[str, Any]) -> str | None:
    """The hostile family of a leaf schema (None: an enum, a boolean, an object ...)."""
    if "enum" in schema or "const" in schema:
        return None
    t = schema.get("type")
    if t in ("number", "integer"):
        return "number"
    if t == "string":
        return "date-time" if schema.get("format") == "date-time" else "string"
    return None


def slots_of(spec: Spec) -> list[Slot]:
    """Every field of every operation that takes numbers, times or strings."""
    found: list[Slot] = []
    for method, path, op in spec.operations():
        for p in op.get("parameters", []):
            if p["in"] not in ("query", "path"):
                continue
            alts = spec.alternatives(p.get("schema", {}))
            alts = [spec.resolve(a["items"]) if a.get("type") == "array" else a for a in alts]
            kinds = {kind_of(a) for a in alts}
            for kind in sorted(k for k in kinds if k is not None):
                found.append(Slot(method, path, p["in"], p["name"], kind))
        body = spec.body_schema(op)
        if body is not None:
            for steps, kind in _body_leaves(spec, body, ()):
                name = ".".join(str(k) for k, _ in steps)
                found.append(Slot(method, path, "body", name, kind, steps))
    return found


def _body_leaves(
    spec: Spec, schema: dict[str, Any], steps: tuple[tuple[str | int, dict[str, Any]], ...]
) -> Iterator[tuple[tuple[tuple[str | int, dict[str, Any]], ...], str]]:
    kinds: set[str] = set()
    for alt in spec.alternatives(schema):
        if alt.get("type") == "object" or "properties" in alt:
            for key, sub in alt.get("properties", {}).items():
                yield from _body_leaves(spec, sub, (*steps, (key, sub)))
        elif alt.get("type") == "array" and "items" in alt:
            yield from _body_leaves(spec, alt["items"], (*steps, (0, alt["items"])))
        else:
            kind = kind_of(alt)
            if kind is not None and kind not in kinds:
                kinds.add(kind)
                yield steps, kind


# --- well-formed requests around the hostile value --------------------------------------------

#: strings a pattern may ask for, tried in order (the first that matches is used)
PATTERN_CANDIDATES = ("B-2", "pat.engineer", "0" * 64, "open")


@dataclass
class Fill:
    """Well-formed values for the fields around the hostile one (real ids where they matter,
    so the hostile value reaches the code behind validation)."""

    signer: str  # the person sending the request
    set_id: str = "x"
    version: int = 1

    def by_name(self, name: str) -> Any:
        return {
            "tag": TEMP,
            "rooms": [ROOM],
            "user_id": self.signer,
            "investigator": self.signer,
            "password": PW,
            "current_password": PW,
            "record_type": "batch",
            "record_id": "B-1",
            "full_name": "Pat Spare",
            "start": "2025-01-01T00:00:00Z",
            "end": "2025-01-01T01:00:00Z",
            "limits": [
                {
                    "tag": TEMP,
                    "alert_high": {"value": 25.0, "inclusive": False},
                    "action_high": {"value": 30.0, "inclusive": False},
                }
            ],
        }.get(name)

    def path_value(self, name: str) -> str:
        return {
            "batch_id": "B-1",
            "dev_id": "DEV-0001",
            "review_id": "AR-0001",
            "user_id": "pat.spare",
            "token_id": "spare",
            "set_id": self.set_id,
            "version": str(self.version),
        }.get(name, "x")

    def value(self, spec: Spec, schema: dict[str, Any], name: str = "") -> Any:
        """A valid value of ``schema`` (the required fields only, for an object)."""
        named = self.by_name(name)
        if named is not None:
            return named
        s = spec.alternatives(schema)[0]
        if "enum" in s:
            return s["enum"][0]
        if "default" in s:
            return s["default"]
        t = s.get("type")
        if t == "object" or "properties" in s:
            props = s.get("properties", {})
            return {k: self.value(spec, props[k], k) for k in s.get("required", [])}
        if t == "array":
            return [self.value(spec, s["items"])] if s.get("minItems") else []
        if t == "boolean":
            return False
        if t == "integer":
            return max(int(s.get("minimum", 1)), 1)
        if t == "number":
            low = s.get("minimum", s.get("exclusiveMinimum", 0))
            return max(float(low), 1.0)
        if t == "string":
            if s.get("format") == "date-time":
                return "2025-01-01T00:00:00Z"
            pattern = s.get("pattern")
            if pattern is None:
                return "x" * max(s.get("minLength", 1), 1)
            for candidate in PATTERN_CANDIDATES:
                if re.fullmatch(pattern, candidate):
                    return candidate
            raise AssertionError(f"no well-formed value for the pattern {pattern!r}")
        raise AssertionError(f"no well-formed value for {s!r}")

    def body(self, spec: Spec, schema: dict[str, Any], slot: Slot) -> dict[str, Any]:
        """The required fields, and ``SENTINEL`` where the slot is (its parents added)."""
        body = self.value(spec, schema)
        place(body, slot.steps, SENTINEL, lambda sub, key: self.value(spec, sub, str(key)))
        return body


def place(container: Any, steps: tuple, leaf: Any, make: Any) -> None:
    """Put ``leaf`` at ``steps`` in ``container``, adding missing parents with ``make``."""
    for i, (key, sub) in enumerate(steps):
        last = i == len(steps) - 1
        if isinstance(key, int):
            if not isinstance(container, list):
                raise AssertionError(f"no list at {steps!r}")
            if not container:
                container.append(None if last else make(sub, ""))
            if last:
                container[0] = leaf
            else:
                container = container[0]
        else:
            if last:
                container[key] = leaf
            else:
                if not isinstance(container.get(key), dict | list):
                    container[key] = make(sub, key)
                container = container[key]


def encode(body: Any, token: str) -> bytes:
    """The body as JSON text with the raw ``token`` where the sentinel is."""
    text = json.dumps(body, ensure_ascii=False)
    marker = json.dumps(SENTINEL)
    assert text.count(marker) == 1, text[:200]
    return text.replace(marker, token).encode()


def permission_of(app: Any, method: str, path: str) -> Permission | str | None:
    """What the route's dependencies demand ("public": nothing)."""
    routes: list[Any] = []
    for r in app.routes:  # FastAPI >= 0.16x keeps included routers as lazy wrappers
        routes += r.effective_candidates() if hasattr(r, "effective_candidates") else [r]

    def walk(dep: Any) -> Permission | str | None:
        for sub in dep.dependencies:
            if hasattr(sub.call, "permission"):
                got: Permission | None = sub.call.permission
                return got
            found = walk(sub)
            if found != "public":
                return found
        return "public"

    for route in routes:
        if route.path == path and method in getattr(route, "methods", ()):
            return walk(route.dependant)
    raise AssertionError(f"no route {method} {path}")


# --- the box ----------------------------------------------------------------------------------

#: the people who send the requests: each operation goes to the first whose role may call it
SENDERS = (
    ("pat.engineer", Role.ENGINEER),
    ("pat.approver", Role.QA_APPROVER),
    ("admin", Role.ADMINISTRATOR),
)


@dataclass
class Box:
    """The app over a store with a batch, a spare person and a spare token."""

    app: Any
    spec: Spec
    clients: dict[str, TestClient]  # signed in, CSRF header set; "" is nobody
    set_id: str
    version: int
    sent: int = 0

    def sender(self, method: str, path: str) -> str:
        need = permission_of(self.app, method, path)
        if need == "public":
            return ""
        for user, role in SENDERS:
            if need is None or (isinstance(need, Permission) and allowed(role, need)):
                return user
        raise AssertionError(f"no sender may call {method} {path} ({need})")

    def send(self, slot: Slot, value: str) -> tuple[str, str, bytes | None, int, str]:
        """Send ``value`` in ``slot``; (method, url, body, status, answer)."""
        user = self.sender(slot.method, slot.path)
        fill = Fill(user or "pat.spare", self.set_id, self.version)
        op = self.spec.document["paths"][slot.path][slot.method.lower()]
        path_values = {p["name"]: fill.path_value(p["name"]) for p in op.get("parameters", [])} | (
            {slot.name: value} if slot.location == "path" else {}
        )
        url = slot.path.format(**{k: quote(v, safe="") for k, v in path_values.items()})
        query = {
            p["name"]: fill.value(self.spec, p.get("schema", {}), p["name"])
            for p in op.get("parameters", [])
            if p["in"] == "query" and p.get("required")
        } | ({slot.name: value} if slot.location == "query" else {})
        schema = self.spec.body_schema(op)
        content = None
        if schema is not None:
            if slot.location == "body":
                content = encode(fill.body(self.spec, schema, slot), value)
            else:
                content = json.dumps(fill.value(self.spec, schema)).encode()
        headers = {"Content-Type": "application/json"} if content is not None else {}
        r = self.clients[user].request(
            slot.method, url, params=query, content=content, headers=headers
        )
        self.sent += 1
        return slot.method, str(r.request.url), content, r.status_code, r.text


def _sign_in(app: Any, user: str, password: str) -> TestClient:
    c = TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False)
    r = c.post("/api/session", json={"user_id": user, "password": password})
    assert r.status_code == 200, r.text
    c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return c


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    cfg, sha = small_plant().load(tmp_path_factory.mktemp("hostile-numbers"))
    store = Store(cfg.store.path)
    trail = AuditTrail(cfg.store.path)
    parts = build_api(cfg, EdgeService(cfg, sha, store), trail)
    d = parts.directory
    d.create_first_administrator("admin", "Ada Admin", ADMIN_PW)
    for user, role in (*SENDERS[:2], ("pat.spare", Role.VIEWER)):
        d.create_user("admin", user, f"Pat {role.value}", role, PW, "test", must_change=False)
    d.create_token("admin", "spare", Role.VIEWER, "a token to revoke")
    clients = {
        user: _sign_in(parts.app, user, ADMIN_PW if user == "admin" else PW) for user, _ in SENDERS
    }
    clients[""] = TestClient(parts.app, base_url="http://127.0.0.1", raise_server_exceptions=False)
    batch = {"id": "B-1", "product": "P", "rooms": [ROOM], "equipment": []}
    r = clients["pat.engineer"].post("/api/batches", json=batch)
    assert r.status_code == 201, r.text
    sets = clients["pat.engineer"].get("/api/limit-sets").json()
    set_id, version = (sets[0]["id"], sets[0]["version"]) if sets else ("x", 1)
    yield Box(parts.app, Spec(parts.app.openapi()), clients, set_id, version)
    for c in clients.values():
        c.close()
    parts.close()
    trail.close()
    store.close()


# --- the tests --------------------------------------------------------------------------------

KINDS = ("number", "date-time", "string")


def test_the_walk_reaches_every_operation_with_a_number_a_time_or_a_string(box) -> None:
    slots = slots_of(box.spec)
    by_kind = {k: [s for s in slots if s.kind == k] for k in KINDS}
    # the fields the issue names, so a change to the walk cannot lose them silently
    ids = {s.id for s in slots}
    for expected in (
        "GET /api/readings query:window_s",
        "GET /api/alarms/metrics query:hours",
        "POST /api/alarms/shelve body:minutes",
        "POST /api/limit-sets body:limits.0.deadband",
        "POST /api/limit-sets body:limits.0.alert_high.value",
        "POST /api/limit-sets/{set_id}/{version}/what-if path:version",
        "POST /api/limit-sets/{set_id}/{version}/what-if body:start",
        "POST /api/audit-reviews body:end",
        "POST /api/batches body:start",
        "GET /api/excursions query:offset",
        "GET /api/process-validation query:cpk_target",
    ):
        assert expected in ids, expected
    assert len(by_kind["number"]) >= 20
    assert len(by_kind["date-time"]) >= 15
    assert len(by_kind["string"]) >= 60


@pytest.mark.parametrize("kind", KINDS)
def test_no_hostile_value_in_any_field_of_any_operation_is_a_server_error(box, kind) -> None:
    server_errors = []
    slots = [s for s in slots_of(box.spec) if s.kind == kind]
    for slot in slots:
        for value in values_for(slot):
            method, url, body, status, text = box.send(slot, value)
            if status >= 500:
                shown = None if body is None else body[:300].decode(errors="replace")
                server_errors.append(f"{slot.id}: {method} {url[:200]} body={shown!r} -> {status}")
    assert not server_errors, "\n".join(server_errors)
