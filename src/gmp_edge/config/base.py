"""What every configuration model shares: unknown keys are errors, values are frozen."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

#: An identifier of a plant object (area, room, device, equipment): usable in tag paths.
ID = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)]

#: Alarm and notification priorities, most urgent first.
PriorityName = Literal["critical", "high", "medium", "low"]

#: Production states limits can be restricted to.
StateName = Literal["at_rest", "in_operation"]


class ConfigModel(BaseModel):
    """A configuration section: unknown keys are refused (no silent typos), values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StrictModel(BaseModel):
    """The input of a GMP object (limits, production sources): as :class:`ConfigModel`, and
    no value is coerced, so ``"false"`` is not a bool and ``"5"`` is not a number."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
