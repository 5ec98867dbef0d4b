"""Pure parts of the OPC UA driver: DataValue → Reading, status bits, chunking, sequences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from asyncua import ua
from asyncua.ua.uaerrors import UaStatusCodeError

from gmp_edge.collector.opcua import (
    OpcuaDeviceSpec,
    OpcuaDriver,
    OpcuaPoint,
    chunked,
    convert_value,
    datavalue_to_reading,
    datetime_to_us,
    describe_error,
    has_overflow,
    keepalive_count,
    limit_note,
    next_sequence_number,
    operation_limit,
    sequence_gap,
    status_name,
    status_text,
    strip_credentials,
)
from gmp_edge.collector.reading import Cause, Quality

SRC = datetime(2024, 5, 1, 8, 30, 0, 123456, tzinfo=UTC)
SRV = SRC + timedelta(milliseconds=5)
SRC_US = 1714552200123456
SRV_US = SRC_US + 5000
EDGE = 1_800_000_000_000_000

GOOD = ua.StatusCodes.Good
OVERFLOW = 0x0000_0480  # InfoType DataValue | Overflow
LIMIT_LOW = 0x0000_0500
LIMIT_HIGH = 0x0000_0600
LIMIT_CONST = 0x0000_0700
UNCERTAIN = ua.StatusCodes.UncertainLastUsableValue
BAD_UNKNOWN = ua.StatusCodes.BadNodeIdUnknown


def dv(
    value: Any,
    code: int = GOOD,
    src: datetime | None = SRC,
    srv: datetime | None = SRV,
    vtype: ua.VariantType | None = None,
) -> ua.DataValue:
    variant = ua.Variant(value, vtype) if vtype is not None else ua.Variant(value)
    # asyncua annotates timestamps with its ua.DateTime encoding marker, but takes and (from
    # the wire) gives plain datetimes: the cast only tells mypy so
    return ua.DataValue(
        variant,
        StatusCode=ua.StatusCode(ua.UInt32(code)),
        SourceTimestamp=cast("ua.DateTime | None", src),
        ServerTimestamp=cast("ua.DateTime | None", srv),
    )


# (case id, DataValue, expected value, quality, message fragment or None, cause)
CONVERSIONS = [
    ("double", dv(12.5), 12.5, Quality.GOOD, None, None),
    ("float", dv(1.5, vtype=ua.VariantType.Float), 1.5, Quality.GOOD, None, None),
    ("int32", dv(7, vtype=ua.VariantType.Int32), 7.0, Quality.GOOD, None, None),
    ("uint64", dv(2**40, vtype=ua.VariantType.UInt64), float(2**40), Quality.GOOD, None, None),
    ("bool true", dv(True), 1.0, Quality.GOOD, None, None),
    ("bool false", dv(False), 0.0, Quality.GOOD, None, None),
    ("string", dv("B-2024-001"), "B-2024-001", Quality.GOOD, None, None),
    ("empty string", dv(""), "", Quality.GOOD, None, None),
    ("localized", dv(ua.LocalizedText("RUN")), "RUN", Quality.GOOD, None, None),
    ("nan", dv(float("nan")), None, Quality.BAD, "device returned nan", Cause.DEVICE),
    ("inf", dv(float("inf")), None, Quality.BAD, "device returned inf", Cause.DEVICE),
    ("null", dv(None), None, Quality.BAD, "null variant", Cause.DEVICE),
    ("array", dv([1.0, 2.0]), None, Quality.BAD, "unsupported value type list", Cause.DEVICE),
    ("bytes", dv(b"\x00"), None, Quality.BAD, "unsupported value type bytes", Cause.DEVICE),
    (
        "uncertain",
        dv(3.0, UNCERTAIN),
        3.0,
        Quality.UNCERTAIN,
        "UncertainLastUsableValue",
        Cause.DEVICE,
    ),
    (
        "uncertain nan",
        dv(float("nan"), UNCERTAIN),
        None,
        Quality.BAD,
        "device returned nan; UncertainLastUsableValue",
        Cause.DEVICE,
    ),
    (
        "bad keeps no value",
        dv(99.0, BAD_UNKNOWN),
        None,
        Quality.BAD,
        "BadNodeIdUnknown (0x80340000)",
        Cause.DEVICE,
    ),
    (
        "bad sensor",
        dv(None, ua.StatusCodes.BadSensorFailure),
        None,
        Quality.BAD,
        "BadSensorFailure (0x808C0000)",
        Cause.DEVICE,
    ),
    (
        "overflow makes good uncertain",
        dv(4.0, OVERFLOW),
        4.0,
        Quality.UNCERTAIN,
        "server queue overflow",
        Cause.DEVICE,
    ),
    (
        "overflow on uncertain keeps name",
        dv(4.0, UNCERTAIN | 0x480),
        4.0,
        Quality.UNCERTAIN,
        "UncertainLastUsableValue; server queue overflow",
        Cause.DEVICE,
    ),
    (
        "overflow on bad",
        dv(None, BAD_UNKNOWN | 0x480),
        None,
        Quality.BAD,
        "BadNodeIdUnknown (0x80340480); server queue overflow",
        Cause.DEVICE,
    ),
    ("low limit", dv(0.0, LIMIT_LOW), 0.0, Quality.UNCERTAIN, "low limit", Cause.DEVICE),
    ("high limit", dv(50.0, LIMIT_HIGH), 50.0, Quality.UNCERTAIN, "high limit", Cause.DEVICE),
    ("constant limit is fine", dv(1.0, LIMIT_CONST), 1.0, Quality.GOOD, None, None),
]


@pytest.mark.parametrize(
    ("value_dv", "value", "quality", "message", "cause"),
    [c[1:] for c in CONVERSIONS],
    ids=[c[0] for c in CONVERSIONS],
)
def test_datavalue_to_reading(
    value_dv: ua.DataValue,
    value: float | str | None,
    quality: Quality,
    message: str | None,
    cause: Cause | None,
) -> None:
    r = datavalue_to_reading("site/press/x", value_dv, EDGE)
    assert r.tag == "site/press/x"
    assert r.value == value
    assert type(r.value) is type(value)  # floats are floats, strings strings
    assert r.quality is quality
    assert r.cause is cause
    assert r.ts_edge_us == EDGE
    if message is None:
        assert r.message is None
    else:
        assert r.message is not None and message in r.message


# (case id, source, server, expected ts_source_us)
TIMESTAMPS = [
    ("source wins", SRC, SRV, SRC_US),
    ("server fallback", None, SRV, SRV_US),
    ("none", None, None, None),
    ("1601 means unset", datetime(1601, 1, 1, tzinfo=UTC), SRV, SRV_US),
    ("naive is utc", SRC.replace(tzinfo=None), None, SRC_US),
]


@pytest.mark.parametrize(
    ("src", "srv", "expected"), [t[1:] for t in TIMESTAMPS], ids=[t[0] for t in TIMESTAMPS]
)
def test_source_timestamp_with_server_fallback(
    src: datetime | None, srv: datetime | None, expected: int | None
) -> None:
    r = datavalue_to_reading("t", dv(1.0, src=src, srv=srv), EDGE)
    assert r.ts_source_us == expected
    assert r.ts_us == (expected if expected is not None else EDGE)


def test_bad_reading_keeps_its_timestamps_and_missing_datavalue_is_bad() -> None:
    r = datavalue_to_reading("t", dv(None, BAD_UNKNOWN), EDGE)
    assert r.ts_source_us == SRC_US
    missing = datavalue_to_reading("t", None, EDGE)
    assert missing.quality is Quality.BAD and missing.cause is Cause.DEVICE
    assert missing.message == "server returned no DataValue"


@pytest.mark.parametrize(
    ("dt", "expected"),
    [
        (None, None),
        (datetime(1970, 1, 1, tzinfo=UTC), None),
        (datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC), 1_000_000),
        (datetime(2024, 5, 1, 8, 30, 0, 123456, tzinfo=UTC), SRC_US),
        (datetime(2024, 5, 1, 10, 30, 0, 123456, tzinfo=UTC).astimezone(), SRC_US + 7_200_000_000),
    ],
)
def test_datetime_to_us(dt: datetime | None, expected: int | None) -> None:
    assert datetime_to_us(dt) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (True, (1.0, None)),
        (0, (0.0, None)),
        (-3, (-3.0, None)),
        (2.25, (2.25, None)),
        ("x", ("x", None)),
        (ua.LocalizedText(None), ("", None)),
        (None, (None, "device returned no value (null variant)")),
        (datetime(2024, 1, 1), (None, "unsupported value type datetime")),
    ],
)
def test_convert_value(raw: Any, expected: tuple[Any, str | None]) -> None:
    assert convert_value(raw) == expected


@pytest.mark.parametrize(
    ("code", "name", "overflow", "limit"),
    [
        (GOOD, "Good", False, None),
        (OVERFLOW, "Good", True, None),
        (0x0000_0080, "Good", False, None),  # bit 7 without InfoType DataValue means nothing
        (0x0000_0880, "Good", False, None),  # InfoType 10 is reserved: bits not interpreted
        (LIMIT_LOW, "Good", False, "value at the source's low limit"),
        (LIMIT_HIGH, "Good", False, "value at the source's high limit"),
        (LIMIT_CONST, "Good", False, None),
        (UNCERTAIN | 0x480, "UncertainLastUsableValue", True, None),
        (BAD_UNKNOWN, "BadNodeIdUnknown", False, None),
        (0x8FFF_0000, "Bad", False, None),  # unknown Bad code still reads as Bad
    ],
)
def test_status_bits(code: int, name: str, overflow: bool, limit: str | None) -> None:
    assert status_name(code) == name
    assert has_overflow(code) is overflow
    assert limit_note(code) == limit


def test_status_text_has_name_and_hex() -> None:
    assert status_text(BAD_UNKNOWN) == "BadNodeIdUnknown (0x80340000)"


@pytest.mark.parametrize(
    ("items", "size", "expected"),
    [
        ([], 3, []),
        ([1, 2, 3], 0, [[1, 2, 3]]),
        ([1, 2, 3], -1, [[1, 2, 3]]),
        ([1, 2, 3], 1, [[1], [2], [3]]),
        ([1, 2, 3, 4, 5], 2, [[1, 2], [3, 4], [5]]),
        ([1, 2, 3], 3, [[1, 2, 3]]),
        ([1, 2, 3], 10, [[1, 2, 3]]),
    ],
)
def test_chunked(items: list[int], size: int, expected: list[list[int]]) -> None:
    assert [list(c) for c in chunked(items, size)] == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, 0), (0, 0), (-5, 0), (True, 0), ("10", 0), (3.0, 0), (1, 1), (10000, 10000)],
)
def test_operation_limit(raw: Any, expected: int) -> None:
    assert operation_limit(raw) == expected


MAX = 0xFFFF_FFFF


@pytest.mark.parametrize(
    ("last", "seq", "lost"),
    [
        (None, 1, 0),  # first message: nothing to judge
        (None, 7, 0),
        (1, 2, 0),  # next data message
        (1, 2, 0),  # keep-alive announcing the next number
        (1, 5, 3),  # 2, 3, 4 lost
        (5, 5, 0),  # repeated number is not a loss
        (5, 3, 0),  # older number is not a loss
        (MAX, 1, 0),  # wrap skips 0
        (MAX - 1, 2, 2),  # MAX and 1 lost across the wrap
        (3, 0, 0),  # 0 is never a valid sequence number
    ],
)
def test_sequence_gap(last: int | None, seq: int, lost: int) -> None:
    assert sequence_gap(last, seq) == lost


def test_next_sequence_number_wraps_to_one() -> None:
    assert next_sequence_number(1) == 2
    assert next_sequence_number(MAX) == 1


@pytest.mark.parametrize(
    ("publishing_ms", "poll_s", "expected"),
    [(1000, 1.0, 1), (100, 1.0, 10), (250, 1.0, 4), (2000, 1.0, 1), (300, 1.0, 3)],
)
def test_keepalive_count(publishing_ms: float, poll_s: float, expected: int) -> None:
    assert keepalive_count(publishing_ms, poll_s) == expected


@pytest.mark.parametrize(
    ("exc", "timeout", "expected"),
    [
        (UaStatusCodeError(ua.StatusCodes.BadSessionIdInvalid), None, "BadSessionIdInvalid"),
        (TimeoutError(), 2.0, "no answer within 2 s"),
        (TimeoutError(), None, "timed out"),
        (
            ConnectionRefusedError(111, "refused"),
            None,
            "ConnectionRefusedError: [Errno 111] refused",
        ),
        (ConnectionError(), None, "ConnectionError"),
    ],
)
def test_describe_error(exc: BaseException, timeout: float | None, expected: str) -> None:
    assert describe_error(exc, timeout).startswith(expected)


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("opc.tcp://10.0.0.5:4840/press", "opc.tcp://10.0.0.5:4840/press"),
        ("opc.tcp://op:secret@10.0.0.5:4840", "opc.tcp://10.0.0.5:4840"),
    ],
)
def test_strip_credentials(endpoint: str, expected: str) -> None:
    assert strip_credentials(endpoint) == expected


# -- spec and driver construction (no network) -------------------------------------------


def spec(**kw: Any) -> OpcuaDeviceSpec:
    base: dict[str, Any] = {"device_id": "press1", "endpoint": "opc.tcp://127.0.0.1:4840"}
    base.update(kw)
    return OpcuaDeviceSpec(**base)


@pytest.mark.parametrize(
    ("kw", "problem"),
    [
        ({"endpoint": "http://x"}, "opc.tcp://"),
        ({"security_mode": "Sign"}, "both be None"),
        ({"security_policy": "Basic256Sha256"}, "both be None"),
        (
            {"security_mode": "SignAndEncrypt", "security_policy": "Basic256Sha256"},
            "certificate and private_key",
        ),
        ({"security_mode": "Sign", "security_policy": "Basic128Rsa15"}, "unknown security_policy"),
        ({"mode": "push"}, "unknown mode"),
        ({"queue_size": 0}, "queue_size"),
        ({"publishing_interval_ms": 0}, "publishing_interval_ms"),
        ({"poll_interval_s": 0}, "poll_interval_s"),
        ({"reconnect_min_s": 5, "reconnect_max_s": 1}, "reconnect_min_s"),
    ],
)
def test_spec_rejects_inconsistent_settings(kw: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        spec(**kw)


def test_spec_accepts_secured_endpoint_and_hides_password() -> None:
    s = spec(
        security_mode="SignAndEncrypt",
        security_policy="Aes256_Sha256_RsaPss",
        certificate="/etc/gmp-edge/cert.der",
        private_key="/etc/gmp-edge/key.pem",
        username="collector",
        password="s3cret",
    )
    assert "s3cret" not in repr(s)


def test_driver_status_tags_and_credentials() -> None:
    d = OpcuaDriver(
        spec(endpoint="opc.tcp://op:pw@127.0.0.1:4840"),
        [OpcuaPoint("a/b", "ns=2;s=TabletPress.TurretSpeed"), OpcuaPoint("a/c", "i=2258")],
    )
    assert d.tags == ["a/b", "a/c"]
    assert d.status.protocol == "opcua"
    assert d.status.endpoint == "opc.tcp://127.0.0.1:4840"
    assert d.status.extra["notifications"] == 0


def test_driver_rejects_duplicate_tags() -> None:
    with pytest.raises(ValueError, match="listed twice"):
        OpcuaDriver(spec(), [OpcuaPoint("a", "i=1"), OpcuaPoint("a", "i=2")])


def test_malformed_node_id_is_kept_as_a_tag() -> None:
    d = OpcuaDriver(spec(), [OpcuaPoint("a", "ns=2;x=?"), OpcuaPoint("b", "i=2258")])
    assert d.tags == ["a", "b"]  # it will read Bad; it does not take "b" down


def test_every_security_policy_name_has_its_asyncua_class() -> None:
    """The spec knows the policies by name only; the client maps each to asyncua."""
    from gmp_edge.collector.opcua.client import POLICIES
    from gmp_edge.collector.opcua.spec import SECURITY_POLICIES

    assert set(POLICIES) == set(SECURITY_POLICIES) - {"None"}
