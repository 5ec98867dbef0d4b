"""Pure polling plan: which Modbus requests read which tags.

Adjacent registers of one function are coalesced into requests of at most
``max_count`` registers (125 is the Modbus limit for FC03/FC04), so a device with
forty tags is read in a handful of round trips.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from gmp_edge.collector.codec import ValueSpec

MODBUS_MAX_REGISTERS = 125


class Function(IntEnum):
    """Modbus read function codes the collector uses."""

    HOLDING = 3
    INPUT = 4


@dataclass(frozen=True, slots=True)
class RegisterPoint:
    """One tag's place in a device's register space (PDU address, 0-based)."""

    tag: str
    function: Function
    address: int
    count: int
    value: ValueSpec

    @property
    def end(self) -> int:
        """One past the last register of this point."""
        return self.address + self.count


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One Modbus read and the points it serves."""

    function: Function
    address: int
    count: int
    points: tuple[RegisterPoint, ...]

    def slice_for(self, point: RegisterPoint, registers: list[int]) -> list[int]:
        """The registers of ``point`` within this request's response."""
        start = point.address - self.address
        return registers[start : start + point.count]


def plan_requests(
    points: Iterable[RegisterPoint],
    max_count: int = MODBUS_MAX_REGISTERS,
    max_gap: int = 0,
) -> list[ReadRequest]:
    """Coalesce points into as few reads as possible.

    ``max_gap`` is how many unused registers a request may span to join two
    points; 0 (the default) joins only adjacent or overlapping points, because
    reading across a hole makes many real devices answer "illegal data address".
    """
    if not 1 <= max_count <= MODBUS_MAX_REGISTERS:
        raise ValueError(f"max_count must be 1..{MODBUS_MAX_REGISTERS}, got {max_count}")
    if max_gap < 0:
        raise ValueError(f"max_gap must be >= 0, got {max_gap}")
    requests: list[ReadRequest] = []
    by_function: dict[Function, list[RegisterPoint]] = {}
    for p in points:
        if p.count > max_count:
            raise ValueError(f"tag {p.tag} spans {p.count} registers, more than {max_count}")
        by_function.setdefault(p.function, []).append(p)
    for function in sorted(by_function):
        ordered = sorted(by_function[function], key=lambda p: (p.address, p.count, p.tag))
        group: list[RegisterPoint] = []
        start = end = 0
        for p in ordered:
            if group and p.address <= end + max_gap and max(end, p.end) - start <= max_count:
                group.append(p)
                end = max(end, p.end)
                continue
            if group:
                requests.append(ReadRequest(function, start, end - start, tuple(group)))
            group, start, end = [p], p.address, p.end
        if group:
            requests.append(ReadRequest(function, start, end - start, tuple(group)))
    return requests
