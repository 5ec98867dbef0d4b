"""The unit of collected data: one value of one tag at one instant, with its quality."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum


class Quality(IntEnum):
    """Data quality, as OPC UA and historians classify it."""

    GOOD = 0
    UNCERTAIN = 1
    BAD = 2


class Cause(StrEnum):
    """Why a reading is not Good; becomes the cause of a gap in the ledger."""

    DEVICE = "device"  # the device answered, but with an error, a fault bit or a garbage value
    NETWORK = "network"  # no answer: refused, timed out, connection lost
    COLLECTOR = "collector"  # our side: decode error, overrun, internal error
    SERVICE_DOWN = "service_down"  # the service itself was not running


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one tag.

    ``ts_source_us`` is the device's own timestamp when it gives one (OPC UA
    source timestamp, particle-counter record time), ``ts_edge_us`` is when the
    edge box acquired it. A failed read is a Bad reading with ``value=None`` and
    a message, never a missing row; a suspicious value keeps its value and is
    marked Uncertain or Bad, never clamped.
    """

    tag: str
    value: float | str | None
    quality: Quality
    ts_edge_us: int
    ts_source_us: int | None = None
    message: str | None = None
    cause: Cause | None = None

    @property
    def ts_us(self) -> int:
        """The time the value belongs to: the device's timestamp if known, else the edge's."""
        return self.ts_source_us if self.ts_source_us is not None else self.ts_edge_us

    @classmethod
    def bad(cls, tag: str, ts_edge_us: int, message: str, cause: Cause) -> Reading:
        """A failed read of ``tag``: no value, Bad quality, the reason kept."""
        return cls(tag, None, Quality.BAD, ts_edge_us, None, message, cause)
