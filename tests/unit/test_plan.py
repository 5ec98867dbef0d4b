"""Coalescing of register reads into requests."""

import pytest

from gmp_edge.collector.codec import DataType, ValueSpec
from gmp_edge.collector.plan import Function, RegisterPoint, plan_requests

HOLD, INP = Function.HOLDING, Function.INPUT
F32 = ValueSpec(DataType.FLOAT32)


def pt(tag, address, count=2, function=HOLD):
    return RegisterPoint(tag, function, address, count, F32)


def shape(reqs):
    return [(int(r.function), r.address, r.count, [p.tag for p in r.points]) for r in reqs]


@pytest.mark.parametrize(
    ("points", "max_count", "max_gap", "expected"),
    [
        ([], 125, 0, []),
        ([pt("a", 0), pt("b", 2)], 125, 0, [(3, 0, 4, ["a", "b"])]),
        ([pt("a", 0), pt("b", 3)], 125, 0, [(3, 0, 2, ["a"]), (3, 3, 2, ["b"])]),
        ([pt("a", 0), pt("b", 3)], 125, 1, [(3, 0, 5, ["a", "b"])]),
        ([pt("b", 2), pt("a", 0)], 125, 0, [(3, 0, 4, ["a", "b"])]),  # order-independent
        ([pt("a", 0, 1), pt("b", 0, 2)], 125, 0, [(3, 0, 2, ["a", "b"])]),  # overlap
        (
            [pt("a", 0), pt("b", 0, function=INP)],
            125,
            0,
            [(3, 0, 2, ["a"]), (4, 0, 2, ["b"])],
        ),
        ([pt("a", 0), pt("b", 2), pt("c", 4)], 4, 0, [(3, 0, 4, ["a", "b"]), (3, 4, 2, ["c"])]),
    ],
)
def test_plan(points, max_count, max_gap, expected):
    assert shape(plan_requests(points, max_count, max_gap)) == expected


def test_never_exceeds_125_registers():
    points = [pt(f"t{i}", 2 * i) for i in range(300)]
    reqs = plan_requests(points)
    assert all(r.count <= 125 for r in reqs)
    assert sum(len(r.points) for r in reqs) == 300
    assert len(reqs) == 5  # 62 floats per request


def test_slice_for_returns_the_points_registers():
    reqs = plan_requests([pt("a", 10), pt("b", 12)])
    regs = [1, 2, 3, 4]
    a, b = reqs[0].points
    assert reqs[0].slice_for(a, regs) == [1, 2]
    assert reqs[0].slice_for(b, regs) == [3, 4]


@pytest.mark.parametrize(("max_count", "max_gap"), [(0, 0), (126, 0), (10, -1)])
def test_bad_limits(max_count, max_gap):
    with pytest.raises(ValueError):
        plan_requests([], max_count, max_gap)


def test_point_wider_than_limit():
    with pytest.raises(ValueError, match="spans"):
        plan_requests([pt("s", 0, 10)], max_count=8)
