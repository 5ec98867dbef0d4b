"""Tags: the measured signals, each with its ISA-95 path and exactly one source."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, field_validator, model_validator

from gmp_edge.config.base import ID, ConfigModel
from gmp_edge.config.nodeid import parse_node_id
from gmp_edge.config.registers import DataType, Order, register_count


class TagKind(StrEnum):
    """What a tag measures; limit presets and dashboards are chosen by kind."""

    PARTICLES_0_5 = "particles_0_5"
    PARTICLES_1_0 = "particles_1_0"
    PARTICLES_3_0 = "particles_3_0"
    PARTICLES_5_0 = "particles_5_0"
    DP = "dp"
    TEMPERATURE = "temperature"
    RH = "rh"
    PRESS_PARAMETER = "press_parameter"
    STATE = "state"
    BATCH_ID = "batch_id"
    STATUS = "status"
    OTHER = "other"


class ModbusSource(ConfigModel):
    """Where a tag lives in a Modbus device's register space.

    ``word_order`` unset means big (most significant word first) for values wider than 16
    bits; it cannot be set on a 16-bit value.
    """

    function: Literal["holding", "input"] = "holding"
    address: int = Field(ge=0, le=65536)
    data_type: DataType
    word_order: Order | None = None
    byte_order: Order = Order.BIG
    length: int | None = Field(default=None, ge=1, le=125)
    scale: float = 1.0
    offset: float = 0.0
    invalid_raw: list[int] = Field(default_factory=list)

    @model_validator(mode="after")
    def _shape(self) -> ModbusSource:
        if self.data_type is DataType.STRING and self.length is None:
            raise ValueError("a string needs length (registers)")
        if self.data_type is not DataType.STRING and self.length is not None:
            raise ValueError(f"length only applies to strings, not {self.data_type}")
        if self.word_order is not None and register_count(self.data_type, self.length) == 1:
            raise ValueError(f"word_order set on a 16-bit value ({self.data_type})")
        if self.scale == 0:
            raise ValueError("scale 0 would erase every value")
        return self


class RecordSource(ConfigModel):
    """A field of a particle counter's stored sample record (record_mode devices)."""

    channel: int | None = Field(default=None, ge=1, le=16)
    analog: int | None = Field(default=None, ge=1, le=16)

    @model_validator(mode="after")
    def _exactly_one(self) -> RecordSource:
        if (self.channel is None) == (self.analog is None):
            raise ValueError("set exactly one of channel (particle count) or analog")
        return self


class OpcuaSource(ConfigModel):
    """An OPC UA variable node, in one of the standard string forms (``config.nodeid``)."""

    node_id: str = Field(min_length=3)

    @field_validator("node_id")
    @classmethod
    def _standard_form(cls, v: str) -> str:
        parse_node_id(v)  # InvalidNodeId (a ValueError) says what is wrong
        return v


class Tag(ConfigModel):
    """A measured signal with an ISA-95 style path ``site/area/room/equipment/signal``."""

    path: str
    device: ID
    unit: str = ""
    kind: TagKind = TagKind.OTHER
    description: str = ""
    valid_min: float | None = None
    valid_max: float | None = None
    modbus: ModbusSource | None = None
    record: RecordSource | None = None
    opcua: OpcuaSource | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Tag:
        sources = [s for s in (self.modbus, self.record, self.opcua) if s is not None]
        if len(sources) != 1:
            raise ValueError("set exactly one of modbus, record or opcua")
        if (
            self.valid_min is not None
            and self.valid_max is not None
            and self.valid_min >= self.valid_max
        ):
            raise ValueError(f"valid_min {self.valid_min} must be below valid_max {self.valid_max}")
        return self

    @property
    def segments(self) -> list[str]:
        """The path split into site, area, room, equipment, signal."""
        return self.path.split("/")
