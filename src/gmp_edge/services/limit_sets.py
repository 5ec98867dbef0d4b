"""Limit-set versions: propose, reject, and re-evaluate the past (what-if).

A proposal is checked against the configured tags before it is stored; a QA approver
approves it by signing it (``SigningService``), which puts it in force.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from gmp_edge.clock import Clock
from gmp_edge.limits.engine import WhatIfResult, what_if
from gmp_edge.limits.model import LimitSet, TagLimits
from gmp_edge.limits.validation import validate_limit_set
from gmp_edge.monitoring.engine import MonitoringEngine
from gmp_edge.monitoring.records import RecordError
from gmp_edge.monitoring.setup import kind_and_grade
from gmp_edge.services.errors import Invalid, NotFound

MAX_WHAT_IF_S = 7 * 86_400


@dataclass(frozen=True, slots=True)
class WhatIf:
    """What a limit-set version would have raised over a stored period."""

    limit_set: LimitSet
    start_us: int
    end_us: int
    readings: int
    result: WhatIfResult
    seconds: float


class LimitSetService:
    """Versions of the plant's limit set and their review before approval."""

    def __init__(self, engine: MonitoringEngine, clock: Clock):
        self._engine = engine
        self._clock = clock

    def history(self) -> list[tuple[LimitSet, str]]:
        """Every version with its status, newest first."""
        return self._engine.books.limit_sets.history()

    def get(self, set_id: str, version: int) -> LimitSet:
        """One version; NotFound if there is none."""
        ls = self._engine.books.limit_sets.get(set_id, version)
        if ls is None:
            raise NotFound(f"no limit set {set_id} v{version}")
        return ls

    def propose(self, actor: str, reason: str, limits: Sequence[TagLimits]) -> LimitSet:
        """A new version of the set in force (the whole set), checked against the tags."""
        current = self._engine.limit_set
        if current is None:
            raise Invalid("no limit set is in force yet; propose once monitoring has started")
        limits, mismatches = self._as_configured(limits)
        ls = LimitSet(
            id=current.id,
            version=current.version + 1,
            effective_from_us=self._clock.now_us(),
            reason=reason,
            proposed_by=actor,
            limits=tuple(limits),
        )
        problems = validate_limit_set(ls, {t.path for t in self._engine.cfg.tags})
        if problems or mismatches:
            details = mismatches + [str(p) for p in problems]
            raise Invalid("; ".join(details), details)
        try:
            return self._engine.books.limit_sets.propose(actor, ls, reason)
        except RecordError as exc:
            raise Invalid(str(exc)) from None

    def _as_configured(self, limits: Sequence[TagLimits]) -> tuple[list[TagLimits], list[str]]:
        """Each tag's kind and room grade from the plant configuration (they choose the
        regulatory ceiling, so a proposal cannot name others to escape it): a value left
        out is taken from the configuration, a different one is a problem."""
        known = {t.path for t in self._engine.cfg.tags}
        out: list[TagLimits] = []
        problems: list[str] = []
        for lim in limits:
            if lim.tag not in known:
                out.append(lim)  # validate_limit_set names the unknown tag
                continue
            kind, grade = kind_and_grade(self._engine.cfg, lim.tag)
            if lim.kind is not None and lim.kind is not kind:
                problems.append(
                    f"{lim.tag}: kind {lim.kind.value!r} given, the plant configuration "
                    f"says {kind.value!r}"
                )
            if lim.grade is not None and lim.grade != grade:
                problems.append(
                    f"{lim.tag}: grade {lim.grade!r} given, the plant configuration says "
                    f"{grade!r} for its room"
                )
            out.append(replace(lim, kind=kind, grade=grade))
        return out, problems

    def reject(self, actor: str, set_id: str, version: int, reason: str) -> LimitSet:
        """Proposed -> rejected, with a reason."""
        self.get(set_id, version)
        try:
            return self._engine.books.limit_sets.reject(actor, set_id, version, reason)
        except RecordError as exc:
            raise Invalid(str(exc)) from None

    def what_if(self, set_id: str, version: int, start_us: int, end_us: int) -> WhatIf:
        """Re-evaluate the stored readings of ``[start_us, end_us)``; writes nothing."""
        ls = self.get(set_id, version)
        if start_us >= end_us or end_us - start_us > MAX_WHAT_IF_S * 1_000_000:
            raise Invalid(f"the period must be positive and at most {MAX_WHAT_IF_S} s")
        t0 = time.perf_counter()
        store = self._engine.store
        data = {}
        n = 0
        for tag in ls.tags:
            rec = store.records(tag, start_us, end_us)  # value NaN: none or not a number
            n += int(rec.size)
            data[tag] = (rec["ts"], rec["v"], rec["q"])
        evaluators = self._engine.evaluators
        timeline = next(iter(evaluators.values())).timeline if evaluators else ()
        # the version as if in force from the period's start: what-if evaluates the past
        as_then = replace(ls, effective_from_us=min(ls.effective_from_us, start_us))
        result = what_if(as_then, data, timeline)
        return WhatIf(ls, start_us, end_us, n, result, time.perf_counter() - t0)
