"""Alert and action limits as people write them: in the plant file and in a proposal.

Both are strict input models (no key unknown, no value coerced), so a misspelt
``action_hihg`` or ``inclusive = "false"`` is refused with the field named instead of being
dropped or read as true. Whether limits are consistent (alert inside action, inside the
preset) is the limit model's business; the loader asks it through the validation context.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gmp_edge.config.base import PriorityName, StateName, StrictModel


class TrendRule(StrictModel):
    """Out-of-trend detection on a tag: raises an OOT alert, not a deviation."""

    method: Literal["ewma", "cusum"] = "ewma"
    mean: float
    sigma: float = Field(gt=0)
    window: int = Field(default=60, ge=10, le=10_000)  # readings kept for the statistic


class LimitEntry(StrictModel):
    """Alert and action limits of one tag in the plant file (Annex 1 §9: alert inside action).

    ``preset`` fills the limits from a regulatory or site preset (see docs); values
    given here override it and must stay inside it.
    """

    tag: str
    preset: Literal["annex1", "osd_room", "dp_min"] | None = None
    alert_high: float | None = None
    action_high: float | None = None
    alert_low: float | None = None
    action_low: float | None = None
    inclusive: bool = False  # True: a value equal to the limit is an excursion
    deadband: float = Field(default=0.0, ge=0)
    on_delay_s: float = Field(default=0.0, ge=0)
    off_delay_s: float = Field(default=0.0, ge=0)
    delay_justification: str = ""
    applies_in: list[StateName] | None = None
    continuous_monitoring: bool = False
    priority: PriorityName = "high"
    trend: TrendRule | None = None


class ThresholdEntry(StrictModel):
    """One limit value of a limit-set entry and whether the value itself is an excursion."""

    value: float
    inclusive: bool


class LimitSetEntry(StrictModel):
    """One tag's limits in a limit-set version, as the API shows and takes them.

    The shape of the limit model's ``TagLimits.to_dict()``: what a client read it can send
    back changed. ``kind`` and ``grade`` select the regulatory ceiling; the limit model
    checks their values.
    """

    tag: str = Field(min_length=1, max_length=1000)
    alert_high: ThresholdEntry | None = None
    action_high: ThresholdEntry | None = None
    alert_low: ThresholdEntry | None = None
    action_low: ThresholdEntry | None = None
    deadband: float = 0.0
    on_delay_s: float = 0.0
    off_delay_s: float = 0.0
    delay_justification: str = Field(default="", max_length=10_000)
    applies_in: list[StateName] | None = None
    continuous_monitoring_required: bool = False
    kind: str | None = Field(default=None, max_length=64)
    grade: str | None = Field(default=None, max_length=16)
