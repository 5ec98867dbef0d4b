"""The plant itself (ISA-95 site, areas, rooms) and its qualified equipment."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import Field

from gmp_edge.config.base import ID, ConfigModel


class Grade(StrEnum):
    """EU GMP cleanroom grade; CNC is controlled-not-classified."""

    A = "A"
    B = "B"
    C = "C"
    D = "D"
    CNC = "CNC"


class Site(ConfigModel):
    """The plant (ISA-95 site): first segment of every tag path."""

    id: ID
    name: str = ""


class Area(ConfigModel):
    """A production area (ISA-95 area), e.g. solid-dose."""

    id: ID
    name: str = ""


class Room(ConfigModel):
    """A room with its cleanroom classification and its neighbours (for DP pairs)."""

    id: ID
    area: ID
    name: str = ""
    grade: Grade | None = None
    iso_class: float | None = Field(default=None, ge=1, le=9)
    adjacent: list[ID] = Field(default_factory=list)


class Equipment(ConfigModel):
    """A qualified asset: a press, a particle counter, a transmitter."""

    id: ID
    kind: str
    room: ID
    name: str = ""
    qualified_until: date | None = None
    calibration_due: date | None = None
