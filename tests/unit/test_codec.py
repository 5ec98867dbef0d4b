"""Table-driven decoding: every data type x every word/byte order, and bad registers."""

import math
import struct

import pytest

from gmp_edge.collector.codec import (
    DataType,
    Decoded,
    DecodeError,
    Order,
    ValueSpec,
    decode_raw,
    decode_value,
    register_count,
    value_decoder,
)
from gmp_edge.collector.reading import Cause, Quality

B, L = Order.BIG, Order.LITTLE


def words(data: bytes, word_order: Order, byte_order: Order) -> list[int]:
    """Encode big-endian bytes the way a device with these orders puts them in registers."""
    ws = [data[i : i + 2] for i in range(0, len(data), 2)]
    if byte_order is L:
        ws = [w[::-1] for w in ws]
    if word_order is L:
        ws.reverse()
    return [int.from_bytes(w, "big") for w in ws]


VALUES = [
    (DataType.INT16, ">h", -12345),
    (DataType.UINT16, ">H", 54321),
    (DataType.INT32, ">i", -123456789),
    (DataType.UINT32, ">I", 3_000_000_000),
    (DataType.INT64, ">q", -(2**40) - 7),
    (DataType.UINT64, ">Q", 2**63 + 5),
    (DataType.FLOAT32, ">f", 21.5),
    (DataType.FLOAT64, ">d", -1234.56789),
]


@pytest.mark.parametrize(("dt", "code", "value"), VALUES)
@pytest.mark.parametrize("word_order", [B, L])
@pytest.mark.parametrize("byte_order", [B, L])
def test_round_trip_every_type_and_order(dt, code, value, word_order, byte_order):
    regs = words(struct.pack(code, value), word_order, byte_order)
    assert len(regs) == register_count(dt)
    wo = word_order if len(regs) > 1 else B
    got = decode_raw(regs, dt, wo, byte_order)
    assert got == pytest.approx(value) if isinstance(value, float) else got == value


@pytest.mark.parametrize(
    ("regs", "byte_order", "expected"),
    [
        ([0x4845, 0x4C4C, 0x4F00, 0x0000], B, "HELLO"),
        ([0x4548, 0x4C4C, 0x004F, 0x0000], L, "HELLO"),
        ([0x4142, 0x2020], B, "AB"),
        ([0x0000, 0x0000], B, ""),
    ],
)
def test_strings(regs, byte_order, expected):
    assert decode_raw(regs, DataType.STRING, B, byte_order) == expected


@pytest.mark.parametrize(
    ("regs", "dt", "error"),
    [
        ([0x0001], DataType.FLOAT32, "needs 2 registers"),
        ([0x0001, 0x0002, 0x0003], DataType.INT32, "needs 2 registers"),
        ([0x10000], DataType.UINT16, "not a 16-bit word"),
        ([-1], DataType.INT16, "not a 16-bit word"),
        ([0xC3A9, 0x0000], DataType.STRING, "not ASCII"),
        ([0x0107, 0x0000], DataType.STRING, "control characters"),
    ],
)
def test_bad_registers_raise(regs, dt, error):
    with pytest.raises(DecodeError, match=error):
        decode_raw(regs, dt)


def f32(v: float, wo: Order = B) -> list[int]:
    return words(struct.pack(">f", v), wo, B)


@pytest.mark.parametrize(
    ("regs", "spec", "value", "quality", "cause", "message"),
    [
        (f32(21.5), ValueSpec(DataType.FLOAT32), 21.5, Quality.GOOD, None, None),
        ([150], ValueSpec(DataType.INT16, scale=0.1), 15.0, Quality.GOOD, None, None),
        ([100], ValueSpec(DataType.UINT16, scale=0.01, offset=1), 2.0, Quality.GOOD, None, None),
        ([0x7FC0, 0x0000], ValueSpec(DataType.FLOAT32), None, Quality.BAD, Cause.DEVICE, "nan"),
        ([0x7F80, 0x0000], ValueSpec(DataType.FLOAT32), None, Quality.BAD, Cause.DEVICE, "inf"),
        (
            [0x8000],
            ValueSpec(DataType.INT16, invalid_raw=frozenset({-32768})),
            None,
            Quality.BAD,
            Cause.DEVICE,
            "invalid-value marker -32768",
        ),
        (
            f32(120.0),
            ValueSpec(DataType.FLOAT32, valid_min=0, valid_max=100),
            120.0,  # kept, not clamped
            Quality.BAD,
            Cause.DEVICE,
            "outside the sensor range",
        ),
        (
            f32(-0.5),
            ValueSpec(DataType.FLOAT32, valid_min=0, valid_max=100),
            -0.5,
            Quality.BAD,
            Cause.DEVICE,
            "outside the sensor range",
        ),
        ([1], ValueSpec(DataType.FLOAT32), None, Quality.BAD, Cause.DEVICE, "undecodable"),
        (
            [0x7F7F, 0xFFFF],
            ValueSpec(DataType.FLOAT32, scale=1e300),
            None,
            Quality.BAD,
            Cause.COLLECTOR,
            "overflows",
        ),
    ],
)
def test_decode_value_quality(regs, spec, value, quality, cause, message):
    d = decode_value(regs, spec)
    assert d.quality is quality
    assert d.cause is cause
    if value is None:
        assert d.value is None
    else:
        assert d.value == pytest.approx(value)
    if message is None:
        assert d.message is None
    else:
        assert message in (d.message or "")
        assert "0x" in (d.message or "")  # raw words kept for the reviewer


def test_nan_message_keeps_raw_words():
    d = decode_value([0x7FC0, 0x0000], ValueSpec(DataType.FLOAT32))
    assert "0x7FC0 0x0000" in (d.message or "")
    assert not math.isnan(0.0)


def test_string_length_required():
    with pytest.raises(ValueError, match="length"):
        register_count(DataType.STRING)


def _specs():
    for dt in DataType:
        if dt is DataType.STRING:
            continue
        for wo in Order:
            for bo in Order:
                yield ValueSpec(dt, wo, bo)
                yield ValueSpec(
                    dt, wo, bo, scale=0.1, offset=-3.0, valid_min=-50.0, valid_max=500.0
                )
                yield ValueSpec(dt, wo, bo, invalid_raw=frozenset({0x7FFF, 0xFFFF, -1, 0}))


def test_value_decoder_agrees_with_decode_value_on_random_and_edge_registers():
    """The hot-path decoder must give the same value (to the bit) or the same Decoded."""
    import random

    rng = random.Random(11)
    edge_words = [0, 1, 0x7FFF, 0x8000, 0xFFFF, 0x7F80, 0xFF80, 0x7FC0]
    for spec in _specs():
        decode = value_decoder(spec)
        counts = {1, 2, 4}
        for _ in range(150):
            n = rng.choice(sorted(counts))
            regs = [
                rng.choice(edge_words) if rng.random() < 0.4 else rng.randrange(65536)
                for _ in range(n)
            ]
            want = decode_value(regs, spec)
            got = decode(regs)
            if isinstance(got, Decoded):
                assert got == want or (
                    got.quality == want.quality and got.message == want.message
                ), (spec, regs)
            else:
                assert want.quality is Quality.GOOD, (spec, regs, want)
                assert isinstance(want.value, float)
                assert math.isclose(got, want.value, rel_tol=0, abs_tol=0) or (
                    struct_bits(got) == struct_bits(want.value)
                ), (spec, regs)
        # garbage: not 16-bit words
        assert decode([70000, 1, 2, 3]) == decode_value([70000, 1, 2, 3], spec)


def struct_bits(x: float) -> bytes:
    return struct.pack(">d", x)
