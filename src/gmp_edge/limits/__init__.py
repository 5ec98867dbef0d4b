"""Limit engine (pure): limit sets and validation, Annex 1 / ISO 14644 presets, evaluation
with delays, deadband, quality and production states, and trend (OOT) rules. No I/O."""

from gmp_edge.limits.engine import (
    Evaluator,
    EventReason,
    Excursion,
    LimitEvent,
    ProductionTimeline,
    TagSeries,
    TagSummary,
    WhatIfResult,
    evaluate,
    excursions_from_events,
    what_if,
)
from gmp_edge.limits.model import (
    AT_REST,
    IN_OPERATION,
    PRODUCTION_STATES,
    Condition,
    Level,
    LimitSet,
    Side,
    TagKind,
    TagLimits,
    Threshold,
)
from gmp_edge.limits.validation import Problem, validate_limit_set, validate_tag_limits

__all__ = [
    "AT_REST",
    "IN_OPERATION",
    "PRODUCTION_STATES",
    "Condition",
    "Evaluator",
    "EventReason",
    "Excursion",
    "Level",
    "LimitEvent",
    "LimitSet",
    "Problem",
    "ProductionTimeline",
    "Side",
    "TagKind",
    "TagLimits",
    "TagSeries",
    "TagSummary",
    "Threshold",
    "WhatIfResult",
    "evaluate",
    "excursions_from_events",
    "validate_limit_set",
    "validate_tag_limits",
    "what_if",
]
