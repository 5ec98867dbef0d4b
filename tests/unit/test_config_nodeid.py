"""OPC UA node ids in every standard string form, parsed at check-config."""

from __future__ import annotations

import uuid

import pytest

from gmp_edge.config.nodeid import InvalidNodeId, NodeRef, parse_node_id

GUID = "72962b91-fa75-4ae6-8d28-b404dc7daf63"

GOOD = [
    ("i=2258", NodeRef("i", 2258, 0, None)),
    ("ns=0;i=2258", NodeRef("i", 2258, 0, None)),
    ("ns=2;s=Press.MainCompressionForce", NodeRef("s", "Press.MainCompressionForce", 2, None)),
    ("ns=2;s=a;b=c", NodeRef("s", "a;b=c", 2, None)),
    ("s=Demo.Value", NodeRef("s", "Demo.Value", 0, None)),
    ("ns=65535;i=4294967295", NodeRef("i", 4294967295, 65535, None)),
    (f"ns=3;g={GUID}", NodeRef("g", uuid.UUID(GUID), 3, None)),
    ("ns=4;b=AQID", NodeRef("b", b"\x01\x02\x03", 4, None)),
    ("nsu=urn:press:line1;s=Force", NodeRef("s", "Force", None, "urn:press:line1")),
    ("nsu=urn:a%3Bb;i=7", NodeRef("i", 7, None, "urn:a;b")),
    ("nsu=http://example.com/UA/;i=1001", NodeRef("i", 1001, None, "http://example.com/UA/")),
]


@pytest.mark.parametrize(("text", "expected"), GOOD)
def test_standard_forms_parse(text: str, expected: NodeRef) -> None:
    assert parse_node_id(text) == expected
    assert parse_node_id(text).needs_namespace_array is (expected.namespace_uri is not None)


BAD = [
    ("Press.MainCompressionForce", "ns=2;s=Press.MainCompressionForce"),
    ("ns=2", "not an OPC UA node id"),
    ("ns=x;s=A", "namespace index 'x'"),
    ("ns=70000;s=A", "namespace index '70000'"),
    ("ns=-1;i=3", "namespace index '-1'"),
    ("nsu=;s=A", "names no namespace URI"),
    ("svr=1;ns=2;s=A", "another server"),
    ("ns=2;x=A", "not an OPC UA node id"),
    ("ns=2;i=abc", "'abc' is not a UInt32"),
    ("ns=2;i=4294967296", "is not a UInt32"),
    ("ns=2;i=-5", "is not a UInt32"),
    ("ns=2;i=\u00b2", "is not a UInt32"),
    ("ns=2;s=", "string identifier is empty"),
    ("ns=2;g=1234", "is not a GUID"),
    ("ns=2;b=***", "is not base64"),
    ("ns=2;b=", "ByteString identifier is empty"),
    (" ns=2;s=A", "blanks"),
    ("ns=2;s=A ", "blanks"),
]


@pytest.mark.parametrize(("text", "says"), BAD)
def test_malformed_node_ids_are_refused_saying_why(text: str, says: str) -> None:
    with pytest.raises(InvalidNodeId) as err:
        parse_node_id(text)
    assert says in str(err.value)
    assert repr(text) in str(err.value)
