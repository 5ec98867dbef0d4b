"""Limit evaluation, alarm handling and the production-state sources of the rooms."""

from __future__ import annotations

from pydantic import Field, model_validator

from gmp_edge.config.base import ConfigModel, StateName, StrictModel


class ProductionSource(StrictModel):
    """How the edge box knows whether a room is in operation, and which batch runs."""

    room: str
    state: StateName | None = None  # fixed state, or ...
    state_tag: str | None = None  # ... a tag whose value says it
    in_operation_values: list[str] = Field(default_factory=lambda: ["EXECUTE"])
    batch_tag: str | None = None  # a tag holding the running batch id (starts/ends batches)
    equipment: str | None = None
    product: str = "not stated by the equipment"

    @model_validator(mode="after")
    def _one_state_source(self) -> ProductionSource:
        if (self.state is None) == (self.state_tag is None):
            raise ValueError("give either state or state_tag")
        return self


class MonitoringConfig(ConfigModel):
    """Limit evaluation, alarms (shelving, re-alarm, escalation) and deviations."""

    limit_set_id: str = Field(default="site-limits", pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    evaluate_every_s: float = Field(default=0.2, gt=0, le=1.0)
    max_shelve_hours: float = Field(default=12, gt=0, le=24 * 7)
    realarm_minutes: float | None = Field(default=30, gt=0)
    escalate_after_minutes: float | None = Field(default=15, gt=0)
