"""From the plant configuration to the limit model: the configured limit set (the
validated baseline) and each room's production-state source."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from gmp_edge.errors import GmpEdgeError
from gmp_edge.limits.model import LimitSet, TagKind, TagLimits, Threshold
from gmp_edge.limits.presets import default_tag_limits
from gmp_edge.limits.validation import validate_limit_set

if TYPE_CHECKING:
    from gmp_edge.config import LimitEntry, PlantConfig

# the plant config's tag kinds, as the limit model knows them
_KINDS = {
    "particles_0_5": TagKind.PARTICLES_0_5,
    "particles_5_0": TagKind.PARTICLES_5_0,
    "dp": TagKind.DP,
    "temperature": TagKind.TEMPERATURE,
    "rh": TagKind.RH,
    "press_parameter": TagKind.PRESS,
}


class LimitConfigError(GmpEdgeError, ValueError):
    """The configured limits cannot form a valid limit set; ``problems`` name key paths."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def kind_and_grade(cfg: PlantConfig, path: str) -> tuple[TagKind, str | None]:
    """What the plant configuration says of a tag's kind and its room's grade: the two
    facts that choose the regulatory ceiling of its limits."""
    tag = next(t for t in cfg.tags if t.path == path)
    room = next(r for r in cfg.rooms if r.id == tag.segments[2])
    return _KINDS.get(tag.kind.value, TagKind.OTHER), (
        room.grade.value if room.grade is not None else None
    )


def _entry_limits(cfg: PlantConfig, entry: LimitEntry) -> TagLimits:
    kind, grade = kind_and_grade(cfg, entry.tag)
    applies = frozenset(entry.applies_in) if entry.applies_in is not None else None
    if entry.preset is not None:
        state = next(iter(applies)) if applies is not None and len(applies) == 1 else None
        base = default_tag_limits(
            entry.tag,
            kind,
            grade=grade,
            state=state,
            deadband=entry.deadband,
            on_delay_s=entry.on_delay_s,
            off_delay_s=entry.off_delay_s,
            delay_justification=entry.delay_justification,
        )
    else:
        base = TagLimits(entry.tag, kind=kind, grade=grade)

    def th(value: float | None, preset: Threshold | None) -> Threshold | None:
        if value is None:
            return preset
        return Threshold(value, entry.inclusive)

    return replace(
        base,
        alert_high=th(entry.alert_high, base.alert_high),
        action_high=th(entry.action_high, base.action_high),
        alert_low=th(entry.alert_low, base.alert_low),
        action_low=th(entry.action_low, base.action_low),
        deadband=entry.deadband,
        on_delay_s=entry.on_delay_s,
        off_delay_s=entry.off_delay_s,
        delay_justification=entry.delay_justification,
        applies_in=applies,
        continuous_monitoring_required=entry.continuous_monitoring
        or base.continuous_monitoring_required,
    )


def build_limit_set(cfg: PlantConfig, proposed_by: str, effective_from_us: int) -> LimitSet:
    """The configured limits as one limit set; LimitConfigError lists every problem."""
    problems: list[str] = []
    entries: list[TagLimits] = []
    for i, entry in enumerate(cfg.limits):
        try:
            entries.append(_entry_limits(cfg, entry))
        except ValueError as exc:
            problems.append(f"limits[{i}]({entry.tag}).preset: {exc}")
    if problems:
        raise LimitConfigError(problems)
    ls = LimitSet(
        id=cfg.monitoring.limit_set_id,
        version=1,
        effective_from_us=effective_from_us,
        reason="limits of the validated plant configuration",
        proposed_by=proposed_by,
        limits=tuple(entries),
    )
    index = {e.tag: i for i, e in enumerate(cfg.limits)}
    for prob in validate_limit_set(ls, {t.path for t in cfg.tags}):
        where = f"limits[{index[prob.tag]}]({prob.tag})" if prob.tag in index else "limits"
        problems.append(f"{where}.{prob.field}: {prob.message}")
    if problems:
        raise LimitConfigError(problems)
    return ls
