"""OPC UA node ids in their standard string forms (OPC 10000-6 §5.3.1.10), parsed at load.

``ns=<index>;<type>=<value>`` or ``nsu=<namespace URI>;<type>=<value>``, where the type is
``i`` (numeric, UInt32), ``s`` (string), ``g`` (GUID) or ``b`` (ByteString, base64); without
``ns=``/``nsu=`` the node is in namespace 0. A namespace URI is what a configuration should
carry (indexes may change when the server restarts), but a server cannot decode it inside a
request: the collector resolves it against the server's namespace array at connect.

This module is pure (no asyncua): ``check-config`` refuses a malformed node id with a message
that says what is wrong, before any device is contacted.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

from gmp_edge.errors import GmpEdgeError

IdType = Literal["i", "s", "g", "b"]

_UINT32_MAX = 0xFFFF_FFFF
_UINT16_MAX = 0xFFFF
_GUID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
FORMS = "ns=<index>;s=<name>, ns=<index>;i=<number>, nsu=<namespace URI>;s=<name>, g= or b="


class InvalidNodeId(GmpEdgeError, ValueError):
    """A node id string that is not in one of the standard forms; the message says why."""


@dataclass(frozen=True, slots=True)
class NodeRef:
    """A parsed node id: its namespace (by index or by URI) and its typed identifier."""

    id_type: IdType
    identifier: int | str | uuid.UUID | bytes
    namespace_index: int | None = 0
    namespace_uri: str | None = None

    @property
    def needs_namespace_array(self) -> bool:
        """True when the namespace is named by URI and must be resolved on the server."""
        return self.namespace_uri is not None


def _namespace(prefix: str, text: str) -> tuple[int | None, str | None]:
    key, _, value = prefix.partition("=")
    if key == "ns":
        if not (value.isascii() and value.isdigit()) or int(value) > _UINT16_MAX:
            raise InvalidNodeId(f"{text!r}: namespace index {value!r} is not a number 0-65535")
        return int(value), None
    if key == "nsu":
        uri = unquote(value)
        if not uri:
            raise InvalidNodeId(f"{text!r}: nsu= names no namespace URI")
        return None, uri
    if key == "svr":
        raise InvalidNodeId(f"{text!r}: nodes on another server (svr=) are not supported")
    raise InvalidNodeId(f"{text!r}: {prefix!r} is not ns=<index> or nsu=<namespace URI>")


def _identifier(id_type: str, value: str, text: str) -> int | str | uuid.UUID | bytes:
    if id_type == "i":
        if not (value.isascii() and value.isdigit()) or int(value) > _UINT32_MAX:
            raise InvalidNodeId(f"{text!r}: numeric identifier {value!r} is not a UInt32")
        return int(value)
    if id_type == "s":
        if not value:
            raise InvalidNodeId(f"{text!r}: the string identifier is empty")
        return value
    if id_type == "g":
        if not _GUID.match(value):
            raise InvalidNodeId(f"{text!r}: {value!r} is not a GUID (8-4-4-4-12 hex digits)")
        return uuid.UUID(value)
    if id_type == "b":
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidNodeId(f"{text!r}: {value!r} is not base64") from None
        if not raw:
            raise InvalidNodeId(f"{text!r}: the ByteString identifier is empty")
        return raw
    raise AssertionError(id_type)  # parse_node_id admits only the four types


def parse_node_id(text: str) -> NodeRef:
    """Parse ``text`` or raise :class:`InvalidNodeId` saying what is wrong and what is expected."""
    if text != text.strip():
        raise InvalidNodeId(f"{text!r}: leading or trailing blanks")
    head, sep, tail = text.partition(";")
    if sep and head.partition("=")[0] in ("ns", "nsu", "svr"):
        index, uri = _namespace(head, text)
        body = tail
    else:  # no namespace part: namespace 0 (and a string identifier may hold ';')
        index, uri, body = 0, None, text
    id_type, eq, value = body.partition("=")
    if not eq or id_type not in ("i", "s", "g", "b"):
        hint = f" (a string node in namespace 2 is ns=2;s={text})" if "=" not in text else ""
        raise InvalidNodeId(f"{text!r} is not an OPC UA node id; expected {FORMS}{hint}")
    return NodeRef(id_type, _identifier(id_type, value, text), index, uri)  # type: ignore[arg-type]
