"""Pure, vectorised limit evaluation with delays, deadband, quality and production states.

Semantics (one tag, one ``TagLimits`` entry, each limit condition independently):

- Only Good readings with a finite value are judged. Bad and Uncertain readings never trip
  nor clear a limit: they are skipped, so a condition and its pending timers hold across
  them. They raise ``monitoring_unavailable`` instead, which the next Good reading clears.
- A Good reading is *beyond* a high limit when ``value > limit`` (``>=`` if inclusive),
  *inside* when ``value <= limit - deadband`` (``<`` if inclusive), and otherwise in the
  dead zone. Low limits mirror this.
- Activation: a run of consecutive Good readings beyond the limit, starting at the
  excursion start; the condition becomes active at the first reading of that run whose
  time is at least ``on_delay_s`` after the run's start (that reading's time is the
  event time; the excursion start is carried too). A Good reading not beyond resets it.
- Return to normal: while active, a run of consecutive Good readings inside, lasting
  ``off_delay_s`` the same way; any Good reading beyond or in the dead zone resets it.
- Delays are judged at reading instants: a condition is confirmed by a reading, never by
  a clock, so results do not depend on when a batch is processed.
- Limits apply only in their production-state windows (and from the limit set's
  ``effective_from_us``). At the end of a window active conditions clear with reason
  ``out_of_window`` (time = the window end, emitted once a later reading shows that
  time has passed), pending timers are dropped, and the next window starts normal.
- Readings of one tag must come with strictly increasing timestamps.

The streaming ``Evaluator`` keeps per-tag, per-condition state between batches and
produces exactly the events a single batch would, wherever the data is split.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import pairwise
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from gmp_edge.collector.reading import Quality, Reading
from gmp_edge.limits.model import LIMIT_CONDITIONS, Condition, LimitSet, Side, TagLimits
from gmp_edge.numfmt import number
from gmp_edge.timefmt import display

_I64_MIN = int(np.iinfo(np.int64).min)
_I64_MAX = int(np.iinfo(np.int64).max)
_US = 1_000_000

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_GOOD = int(Quality.GOOD)
#: Batches up to this size are first offered to ``_EntryMachine.quiet_step``.
QUIET_MAX = 16

_CONDITION_ORDER = {
    c: i for i, c in enumerate((*LIMIT_CONDITIONS, Condition.MONITORING_UNAVAILABLE))
}


class EventReason(StrEnum):
    """Why a condition changed."""

    BEYOND_LIMIT = "beyond_limit"  # activation after the on-delay
    RETURNED = "returned"  # back inside (past the deadband) for the off-delay; or Good data again
    OUT_OF_WINDOW = "out_of_window"  # the production-state window of the limits ended
    NO_GOOD_DATA = "no_good_data"  # a Bad or Uncertain reading: monitoring unavailable
    RETIRED = "retired"  # the limit set was replaced (``Evaluator.retire``)


@dataclass(frozen=True, slots=True)
class LimitEvent:
    """A condition of a tag became active (``active=True``) or cleared.

    - ``ts_us``: when the change took effect (activation: the reading that satisfied the
      on-delay; clear: the reading that satisfied the off-delay, or the window end).
    - ``value``: the reading at ``ts_us`` (None for window ends and monitoring events).
    - ``limit``: the threshold value (None for monitoring_unavailable).
    - ``excursion_start_us``: first reading of the excursion (before any on-delay); for
      monitoring_unavailable, the first Bad/Uncertain reading.
    - ``peak``: the most extreme Good value from the excursion start up to ``ts_us``
      (max for high limits, min for low); None for monitoring_unavailable.
    """

    tag: str
    condition: Condition
    active: bool
    ts_us: int
    value: float | None
    limit: float | None
    limit_set_id: str
    limit_set_version: int
    excursion_start_us: int
    peak: float | None
    reason: EventReason


def activation_text(e: LimitEvent, unit: str = "") -> str:
    """What a notification of an activated condition says, for people: the value and the
    limit it crossed, or, for monitoring unavailable, that no Good data came and since when."""
    u = f" {unit}" if unit else ""
    where = f"limit set {e.limit_set_id} v{e.limit_set_version}"
    if e.value is None or e.limit is None:
        return (
            f"no Good readings since {display(e.excursion_start_us)} "
            f"(monitoring unavailable; {where})"
        )
    side = "above" if e.condition.side is Side.HIGH else "below"
    return f"value {number(e.value)}{u} {side} the limit {number(e.limit)}{u} ({where})"


class ProductionTimeline:
    """Production states over time: ``(start_us, state)`` changes in increasing time.

    Each state holds until the next change. Before the first change the state is unknown,
    and only limits that apply in all states (``applies_in=None``) are evaluated.
    """

    def __init__(self, changes: Iterable[tuple[int, str]] = ()) -> None:
        self._starts: list[int] = []
        self._states: list[str] = []
        self.version = 0
        for start, state in changes:
            self.add(start, state)

    def add(self, start_us: int, state: str) -> None:
        """Append a state change; it must be later than the previous one."""
        if self._starts and start_us <= self._starts[-1]:
            raise ValueError(
                f"state change at {start_us} is not after the previous one at {self._starts[-1]}"
            )
        self._starts.append(int(start_us))
        self._states.append(state)
        self.version += 1

    def changes(self) -> list[tuple[int, str]]:
        """All changes, oldest first."""
        return list(zip(self._starts, self._states, strict=True))

    def state_at(self, ts_us: int) -> str | None:
        """The state at ``ts_us`` (None before the first change)."""
        i = int(np.searchsorted(np.asarray(self._starts, dtype=np.int64), ts_us, "right")) - 1
        return self._states[i] if i >= 0 else None

    def windows(
        self, applies_in: frozenset[str] | None, from_us: int | None = None
    ) -> tuple[IntArray, IntArray]:
        """Disjoint half-open ``[start, end)`` windows in which ``applies_in`` holds."""
        lo = _I64_MIN if from_us is None else int(from_us)
        spans: list[tuple[int, int]] = []
        if applies_in is None:
            spans.append((lo, _I64_MAX))
        else:
            ends = [*self._starts[1:], _I64_MAX][: len(self._starts)]
            for s, e, st in zip(self._starts, ends, self._states, strict=True):
                if st not in applies_in or e <= lo:
                    continue
                s = max(s, lo)
                if spans and spans[-1][1] == s:
                    spans[-1] = (spans[-1][0], e)  # same window continues
                else:
                    spans.append((s, e))
        starts = np.array([s for s, _ in spans], dtype=np.int64)
        window_ends = np.array([e for _, e in spans], dtype=np.int64)
        return starts, window_ends


@dataclass(slots=True)
class _Carry:
    """What one condition remembers between batches."""

    active: bool = False
    exc_start_us: int = 0  # active: first reading of the excursion
    exc_peak: float | None = None  # active: peak so far (in the kernel's sign)
    window: int | None = None  # start of the window of the last judged reading
    run_kind: int = 0  # last Good reading: 1 beyond, 2 dead zone, 3 inside; 0 none
    run_start_us: int = 0  # first reading of that run
    run_ok: bool = False  # the run already satisfied its delay
    run_peak: float | None = None  # beyond runs: peak of the run so far

    def to_dict(self) -> dict[str, Any]:
        return {
            "active": self.active,
            "exc_start_us": self.exc_start_us,
            "exc_peak": self.exc_peak,
            "window": self.window,
            "run_kind": self.run_kind,
            "run_start_us": self.run_start_us,
            "run_ok": self.run_ok,
            "run_peak": self.run_peak,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> _Carry:
        return cls(**d)


@dataclass(slots=True)
class _Markers:
    """Ends of production-state windows that this batch shows to have passed."""

    key: IntArray  # 2*j: just before batch reading j
    ts: IntArray


def _alternate(
    keys: IntArray, types: npt.NDArray[np.int8], initially_active: bool
) -> npt.NDArray[np.intp]:
    """Positions (in sort order) of candidates that change the state.

    ``types``: 1 = would activate, 2 = would clear, 3 = forced clear (window end).
    After an activation only the next clear counts and vice versa, so in key order a
    candidate counts exactly when its kind differs from the candidate before it.
    """
    order = np.argsort(keys, kind="stable")
    eff = np.where(types[order] == 1, 1, 2).astype(np.int8)
    prev = np.empty_like(eff)
    if len(eff):
        prev[0] = 1 if initially_active else 2
        prev[1:] = eff[:-1]
    return order[eff != prev]


def _segment_peaks(x: FloatArray, starts: IntArray, ends_incl: IntArray) -> FloatArray:
    """max(x[s..e]) for each segment; -inf for empty ones (e < s)."""
    if len(starts) == 0:
        return np.empty(0)
    n = len(x)
    s = np.maximum(starts, 0)
    e1 = ends_incl + 1
    empty = e1 <= s
    s = np.where(empty, n, s)
    e1 = np.where(empty, n + 1, e1)
    xpad = np.concatenate([x, [-np.inf, -np.inf]])
    flat = np.empty(2 * len(s), dtype=np.intp)
    flat[0::2] = s
    flat[1::2] = e1
    return np.maximum.reduceat(xpad, flat)[0::2]


class _EntryMachine:
    """Evaluates one ``TagLimits`` entry batch after batch."""

    def __init__(self, limits: TagLimits, set_id: str, version: int, from_us: int | None):
        self.limits = limits
        self.set_id = set_id
        self.version = version
        self.from_us = from_us
        self.carries: dict[Condition, _Carry] = {
            c: _Carry() for c in LIMIT_CONDITIONS if limits.threshold(c) is not None
        }
        self.monitor = _Carry()  # run_kind: 1 bad, 3 good
        self.last_ts: int | None = None
        self._windows_cache: tuple[int, IntArray, IntArray] | None = None

    # -- state ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "applies_in": None
            if self.limits.applies_in is None
            else sorted(self.limits.applies_in),
            "last_ts": self.last_ts,
            "conditions": {c.value: k.to_dict() for c, k in self.carries.items()},
            "monitoring": self.monitor.to_dict(),
        }

    def load(self, d: Mapping[str, Any]) -> None:
        self.last_ts = d["last_ts"]
        for name, cd in d["conditions"].items():
            cond = Condition(name)
            if cond not in self.carries:
                raise ValueError(f"{self.limits.tag}: saved state has {name}, limits do not")
            self.carries[cond] = _Carry.from_dict(cd)
        self.monitor = _Carry.from_dict(d["monitoring"])

    # -- evaluation ----------------------------------------------------------
    def _windows(self, timeline: ProductionTimeline) -> tuple[IntArray, IntArray]:
        c = self._windows_cache
        if c is None or c[0] != timeline.version:
            starts, ends = timeline.windows(self.limits.applies_in, self.from_us)
            c = (timeline.version, starts, ends)
            self._windows_cache = c
        return c[1], c[2]

    def quiet_step(
        self, ts: Sequence[int], v: Sequence[float], q: Sequence[int], timeline: ProductionTimeline
    ) -> bool:
        """Take a small batch in plain Python when it cannot change any condition; False
        (nothing touched) otherwise, and :meth:`step` takes it.

        Quiet means: one window holds the whole batch (so no window end passes), every
        reading is Good and finite, monitoring is not active, and no condition is active
        or sees a reading beyond its limit. Then no event is possible and only the run
        memory moves, as :meth:`step` would move it (the equivalence is property-tested).
        Why: the running service steps after every commit, a tag has one or two new
        readings a step, and the vectorised kernels cost ~120 us a call whatever the size,
        most of the monitoring engine's CPU at 2,000 limit tags.
        """
        starts, ends = self._windows(timeline)
        if len(starts) != 1 or self.monitor.active:
            return False
        window = int(starts[0])
        if not (window <= ts[0] and int(ends[0]) > ts[-1]):
            return False
        for x, quality in zip(v, q, strict=True):
            if quality != _GOOD or not math.isfinite(x):
                return False
        lim = self.limits
        plan = []
        for cond, c in self.carries.items():
            if c.active:
                return False
            th = lim.threshold(cond)
            assert th is not None
            sign = 1.0 if cond.side is Side.HIGH else -1.0
            limit = sign * th.value
            for x in v:
                xs = x * sign
                if (xs >= limit) if th.inclusive else (xs > limit):
                    return False
            plan.append((c, sign, limit - lim.deadband, th.inclusive))
        d_off = round(lim.off_delay_s * _US)
        for c, sign, back, inclusive in plan:
            kind, run_start, ok = c.run_kind, c.run_start_us, c.run_ok
            same_window = c.window == window
            for t, x in zip(ts, v, strict=True):
                xs = x * sign
                inside = (xs < back) if inclusive else (xs <= back)
                k = 3 if inside else 2
                if not (same_window and k == kind):
                    run_start = t
                kind, same_window = k, True
                ok = inside and t - run_start >= d_off
            c.window, c.run_kind, c.run_start_us, c.run_ok = window, kind, int(run_start), ok
            c.run_peak, c.exc_start_us, c.exc_peak = None, 0, None
        m = self.monitor
        m.window, m.run_kind, m.exc_start_us = window, 3, 0
        self.last_ts = int(ts[-1])
        return True

    def step(
        self, ts: IntArray, v: FloatArray, q: npt.NDArray[np.int8], timeline: ProductionTimeline
    ) -> list[LimitEvent]:
        n = len(ts)
        if n == 0:
            return []
        starts, ends = self._windows(timeline)
        prev_last = _I64_MIN if self.last_ts is None else self.last_ts
        last = int(ts[-1])
        # Window ends that this batch shows to have passed.
        lo_i = int(np.searchsorted(ends, prev_last, "right"))
        hi_i = int(np.searchsorted(ends, last, "right"))
        m_ts = ends[lo_i:hi_i]
        markers = _Markers(2 * np.searchsorted(ts, m_ts, "left").astype(np.int64), m_ts)

        if len(starts) == 1 and starts[0] <= ts[0] and ends[0] > last:
            all_in = True  # fast path: the whole batch is in one window
            wid: IntArray | None = None
            inwin: npt.NDArray[np.bool_] | None = None
        else:
            all_in = False
            widx = np.searchsorted(starts, ts, "right") - 1
            ok = widx >= 0
            widx_c = np.where(ok, widx, 0)
            inwin = ok & (ts < ends[widx_c]) if len(starts) else np.zeros(n, dtype=bool)
            wid = starts[widx_c] if len(starts) else np.zeros(n, dtype=np.int64)

        good_q = (q == Quality.GOOD) & np.isfinite(v)
        good = good_q if inwin is None else good_q & inwin
        if all_in and bool(good.all()):
            gi: npt.NDArray[np.intp] | None = None
            t, x = ts, v
            w: IntArray | None = None
            single_window: int | None = int(starts[0])
        else:
            gi = np.flatnonzero(good)
            t, x = ts[gi], v[gi]
            w = None if wid is None else wid[gi]
            single_window = int(starts[0]) if all_in else None
        pos = (2 * np.arange(len(t), dtype=np.int64) + 1) if gi is None else 2 * gi + 1

        events: list[LimitEvent] = []
        for cond, carry in self.carries.items():
            th = self.limits.threshold(cond)
            assert th is not None
            high = cond.side is Side.HIGH
            sign = 1.0 if high else -1.0
            xs = x if high else -x
            events.extend(
                self._limit_kernel(
                    cond,
                    carry,
                    sign,
                    t,
                    xs,
                    w,
                    single_window,
                    pos,
                    markers,
                    sign * th.value,
                    th.inclusive,
                    float(th.value),
                )
            )
        events.extend(self._monitor_kernel(ts, good_q, inwin, wid, single_window, markers))
        self.last_ts = last
        events.sort(key=lambda e: (e.ts_us, _CONDITION_ORDER[e.condition]))
        return events

    def _limit_kernel(
        self,
        cond: Condition,
        c: _Carry,
        sign: float,
        t: IntArray,
        x: FloatArray,
        w: IntArray | None,
        single_window: int | None,
        pos: IntArray,
        markers: _Markers,
        limit: float,
        inclusive: bool,
        limit_shown: float,
    ) -> list[LimitEvent]:
        lim = self.limits
        n = len(t)
        d_on = round(lim.on_delay_s * _US)
        d_off = round(lim.off_delay_s * _US)
        back = limit - lim.deadband
        if inclusive:
            beyond = x >= limit
            inside = x < back
        else:
            beyond = x > limit
            inside = x <= back
        kind = (2 + inside.view(np.int8) - beyond.view(np.int8)).astype(np.int8)
        newrun = np.empty(n, dtype=bool)
        first_window = single_window if w is None else (int(w[0]) if n else None)
        if n:
            np.not_equal(kind[1:], kind[:-1], out=newrun[1:])
            if w is not None:
                newrun[1:] |= w[1:] != w[:-1]
            newrun[0] = not (c.window == first_window and c.run_kind == int(kind[0]))
        idx = np.arange(n, dtype=np.int64)
        rs = np.where(newrun, idx, -1)
        np.maximum.accumulate(rs, out=rs)
        run_start = t[np.maximum(rs, 0)] if n else t.copy()
        if n and rs[0] < 0:
            k0 = int(np.argmax(rs >= 0)) if bool((rs >= 0).any()) else n
            run_start[:k0] = c.run_start_us
        elapsed = t - run_start
        act_ok = beyond if d_on == 0 else beyond & (elapsed >= d_on)
        clr_ok = inside if d_off == 0 else inside & (elapsed >= d_off)
        ok = act_ok | clr_ok
        first = ok.copy()
        if n:
            first[1:] &= newrun[1:] | ~ok[:-1]
            first[0] &= bool(newrun[0]) or not c.run_ok
        cand = np.flatnonzero(first)
        m = len(markers.key)
        keys = np.concatenate([pos[cand], markers.key])
        types = np.concatenate(
            [np.where(beyond[cand], 1, 2).astype(np.int8), np.full(m, 3, dtype=np.int8)]
        )
        # Compressed index of each candidate; for a window end, the last judged reading
        # before it (-1 if none in this batch).
        where = np.concatenate([cand, np.searchsorted(pos, markers.key) - 1]).astype(np.int64)
        kept = _alternate(keys, types, c.active)
        k_type = types[kept]
        k_idx = where[kept]
        k_n = len(kept)

        # Excursion start and peak of each kept event.
        is_act = k_type == 1
        seg = np.where(is_act, rs[np.maximum(k_idx, 0)] if n else -1, -1).astype(np.int64)
        start_us = np.zeros(k_n, dtype=np.int64)
        if k_n:
            start_us[is_act] = run_start[k_idx[is_act]]
            # A clear belongs to the activation just before it, or to the carried one.
            prev_seg = np.concatenate([[-1], seg[:-1]])
            prev_start = np.concatenate([[c.exc_start_us], start_us[:-1]])
            seg = np.where(is_act, seg, prev_seg)
            start_us = np.where(is_act, start_us, prev_start)
        peaks = _segment_peaks(x, seg, k_idx)
        carried = np.full(k_n, -np.inf)
        if k_n:
            carried[:] = -np.inf if c.run_peak is None else c.run_peak
            if not is_act[0] and c.active:
                carried[0] = -np.inf if c.exc_peak is None else c.exc_peak
            peaks = np.where(seg < 0, np.maximum(peaks, carried), peaks)

        events: list[LimitEvent] = []
        for j in range(k_n):
            ty = int(k_type[j])
            i = int(k_idx[j])
            if ty == 3:
                mk = int(kept[j]) - len(cand)
                ts_ev, value = int(markers.ts[mk]), None
            else:
                ts_ev, value = int(t[i]), float(x[i]) * sign
            pk = float(peaks[j])
            events.append(
                LimitEvent(
                    lim.tag,
                    cond,
                    ty == 1,
                    ts_ev,
                    value,
                    limit_shown,
                    self.set_id,
                    self.version,
                    int(start_us[j]),
                    pk * sign if math.isfinite(pk) else None,
                    (EventReason.BEYOND_LIMIT, EventReason.RETURNED, EventReason.OUT_OF_WINDOW)[
                        ty - 1
                    ],
                )
            )

        # Carry for the next batch.
        ended_after_last = m > 0 and (n == 0 or int(markers.key[-1]) > int(pos[-1]))
        if k_n:
            c.active = bool(k_type[-1] == 1)
        if c.active:
            if k_n:
                s = int(seg[-1])
                c.exc_start_us = int(start_us[-1])
                base = c.run_peak if s < 0 else None
            else:
                s = -1
                base = c.exc_peak
            tail = float(x[max(s, 0) :].max()) if n else -math.inf
            c.exc_peak = max(tail, -math.inf if base is None else base)
        else:
            c.exc_start_us, c.exc_peak = 0, None
        if ended_after_last:
            c.window, c.run_kind, c.run_start_us, c.run_ok, c.run_peak = None, 0, 0, False, None
        elif n:
            last_rs = int(rs[-1])
            old_peak, c.run_peak = c.run_peak, None
            if kind[-1] == 1:
                tail = float(x[max(last_rs, 0) :].max())
                if last_rs < 0 and old_peak is not None:
                    tail = max(tail, old_peak)  # the run began in an earlier batch
                c.run_peak = tail
            c.window = single_window if w is None else int(w[-1])
            c.run_kind = int(kind[-1])
            c.run_start_us = int(run_start[-1])
            c.run_ok = bool(ok[-1])
        return events

    def _monitor_kernel(
        self,
        ts: IntArray,
        good_q: npt.NDArray[np.bool_],
        inwin: npt.NDArray[np.bool_] | None,
        wid: IntArray | None,
        single_window: int | None,
        markers: _Markers,
    ) -> list[LimitEvent]:
        c = self.monitor
        if inwin is None:
            mi: npt.NDArray[np.intp] | None = None
            bad = ~good_q
            w = None
        else:
            mi = np.flatnonzero(inwin)
            bad = ~good_q[mi]
            w = None if wid is None else wid[mi]
        n = len(bad)
        prev_bad = np.empty(n, dtype=bool)
        newwin = np.zeros(n, dtype=bool)
        if n:
            prev_bad[1:] = bad[:-1]
            first_window = single_window if w is None else int(w[0])
            same = c.window == first_window
            prev_bad[0] = same and c.run_kind == 1
            if w is not None:
                newwin[1:] = w[1:] != w[:-1]
            newwin[0] = not same
        raise_ = bad & (~prev_bad | newwin)
        clear = ~bad & prev_bad & ~newwin
        cand = np.flatnonzero(raise_ | clear)
        pos = (2 * cand + 1) if mi is None else 2 * mi[cand] + 1
        keys = np.concatenate([pos, markers.key])
        types = np.concatenate(
            [np.where(bad[cand], 1, 2).astype(np.int8), np.full(len(markers.key), 3, np.int8)]
        )
        kept = _alternate(keys, types, c.active)
        events: list[LimitEvent] = []
        sample_ts = ts if mi is None else ts[mi]
        for j in kept:
            j = int(j)
            ty = int(types[j])
            ts_ev = int(markers.ts[j - len(cand)]) if ty == 3 else int(sample_ts[cand[j]])
            if ty == 1:
                c.active, c.exc_start_us = True, ts_ev
            else:
                c.active = False
            events.append(
                LimitEvent(
                    self.limits.tag,
                    Condition.MONITORING_UNAVAILABLE,
                    ty == 1,
                    ts_ev,
                    None,
                    None,
                    self.set_id,
                    self.version,
                    c.exc_start_us,
                    None,
                    (EventReason.NO_GOOD_DATA, EventReason.RETURNED, EventReason.OUT_OF_WINDOW)[
                        ty - 1
                    ],
                )
            )
        if not c.active:
            c.exc_start_us = 0
        # A window end after the last reading in a window resets the run memory.
        last_pos = -1 if n == 0 else (2 * (n - 1) + 1 if mi is None else 2 * int(mi[-1]) + 1)
        ended_after_last = len(markers.key) > 0 and int(markers.key[-1]) > last_pos
        if ended_after_last:
            c.window, c.run_kind = None, 0
        elif n:
            c.window = single_window if w is None else int(w[-1])
            c.run_kind = 1 if bad[-1] else 3
        return events

    def retire(self, ts_us: int) -> list[LimitEvent]:
        """Clear every active condition at ``ts_us`` (reason ``retired``) and reset."""
        events: list[LimitEvent] = []
        for cond, c in [*self.carries.items(), (Condition.MONITORING_UNAVAILABLE, self.monitor)]:
            if c.active:
                th = self.limits.threshold(cond)
                sign = -1.0 if cond.side is Side.LOW else 1.0
                events.append(
                    LimitEvent(
                        self.limits.tag,
                        cond,
                        False,
                        ts_us,
                        None,
                        None if th is None else th.value,
                        self.set_id,
                        self.version,
                        c.exc_start_us,
                        None if c.exc_peak is None else c.exc_peak * sign,
                        EventReason.RETIRED,
                    )
                )
        for cond in self.carries:
            self.carries[cond] = _Carry()
        self.monitor = _Carry()
        return events


def _as_arrays(
    ts_us: npt.ArrayLike, value: npt.ArrayLike, quality: npt.ArrayLike
) -> tuple[IntArray, FloatArray, npt.NDArray[np.int8]]:
    ts = np.ascontiguousarray(ts_us, dtype=np.int64)
    v = np.ascontiguousarray(value, dtype=np.float64)
    q = np.ascontiguousarray(quality, dtype=np.int8)
    if not (len(ts) == len(v) == len(q)):
        raise ValueError(f"array lengths differ: ts {len(ts)}, value {len(v)}, quality {len(q)}")
    if len(ts) > 1 and not bool((ts[1:] > ts[:-1]).all()):
        raise ValueError("timestamps of one tag must be strictly increasing")
    return ts, v, q


class Evaluator:
    """Streaming limit evaluation for all tags of a limit set.

    Feed each tag's readings in time order, in batches of any size; ``state()`` and
    ``from_state()`` carry pending delays and active conditions across a restart. One
    evaluator follows one production timeline (one production area); the limit set
    applies from its ``effective_from_us`` unless ``apply_from_us`` says otherwise.
    """

    def __init__(
        self,
        limit_set: LimitSet,
        timeline: ProductionTimeline | Iterable[tuple[int, str]] = (),
        *,
        apply_from_us: int | None = None,
    ) -> None:
        self.limit_set = limit_set
        self.timeline = (
            timeline if isinstance(timeline, ProductionTimeline) else ProductionTimeline(timeline)
        )
        self.apply_from_us = limit_set.effective_from_us if apply_from_us is None else apply_from_us
        self._machines: dict[str, list[_EntryMachine]] = defaultdict(list)
        for t in limit_set.limits:
            self._machines[t.tag].append(
                _EntryMachine(t, limit_set.id, limit_set.version, self.apply_from_us)
            )
        self._last_ts: dict[str, int] = {}

    def add_state(self, start_us: int, state: str) -> None:
        """Record a production-state change; it must precede every reading already fed."""
        latest = max(self._last_ts.values(), default=None)
        if latest is not None and start_us <= latest:
            raise ValueError(
                f"state change at {start_us} arrives after readings up to {latest} were "
                "evaluated; feed state changes before the readings that follow them"
            )
        self.timeline.add(start_us, state)

    def feed(
        self, tag: str, ts_us: npt.ArrayLike, value: npt.ArrayLike, quality: npt.ArrayLike
    ) -> list[LimitEvent]:
        """Evaluate the next readings of ``tag``; returns the events, in time order.

        Tags without limits in the set are ignored. Raises ValueError if the readings are
        not strictly after the ones fed before.
        """
        machines = self._machines.get(tag)
        if not machines:
            return []
        if type(ts_us) is list and 0 < len(ts_us) <= QUIET_MAX and self.quiet_path:
            machines = self._not_quiet(tag, machines, ts_us, value, quality)
            if not machines:
                return []
        ts, v, q = _as_arrays(ts_us, value, quality)
        if not len(ts):
            return []
        prev = self._last_ts.get(tag)
        if prev is not None and int(ts[0]) <= prev:
            raise ValueError(f"{tag}: readings at {int(ts[0])} are not after {prev}")
        events: list[LimitEvent] = []
        for mch in machines:
            events.extend(mch.step(ts, v, q, self.timeline))
        if len(machines) > 1:
            events.sort(key=lambda e: (e.ts_us, _CONDITION_ORDER[e.condition]))
        self._last_ts[tag] = int(ts[-1])
        return events

    #: False: every batch goes through the vectorised kernels (the tests' reference).
    quiet_path = True

    def _not_quiet(
        self,
        tag: str,
        machines: list[_EntryMachine],
        ts: list[int],
        value: Any,
        quality: Any,
    ) -> list[_EntryMachine]:
        """Offer a small batch (lists) to each machine's quiet step; the machines that did
        not take it. Checks what :meth:`feed` checks first, so a refused batch changes
        nothing."""
        v, q = list(value), list(quality)
        if not (len(ts) == len(v) == len(q)):
            raise ValueError(
                f"array lengths differ: ts {len(ts)}, value {len(v)}, quality {len(q)}"
            )
        prev = self._last_ts.get(tag)
        if prev is not None and ts[0] <= prev:
            raise ValueError(f"{tag}: readings at {ts[0]} are not after {prev}")
        for a, b in pairwise(ts):
            if b <= a:
                raise ValueError("timestamps of one tag must be strictly increasing")
        rest = [m for m in machines if not m.quiet_step(ts, v, q, self.timeline)]
        if not rest:
            self._last_ts[tag] = int(ts[-1])
        return rest

    def feed_readings(self, readings: Iterable[Reading]) -> list[LimitEvent]:
        """Convenience: evaluate ``Reading`` objects (any tags), grouped per tag."""
        by_tag: dict[str, tuple[list[int], list[float], list[int]]] = defaultdict(
            lambda: ([], [], [])
        )
        for r in readings:
            ts, vs, qs = by_tag[r.tag]
            ts.append(r.ts_us)
            vs.append(float(r.value) if isinstance(r.value, int | float) else math.nan)
            qs.append(int(r.quality))
        events: list[LimitEvent] = []
        for tag, (ts, vs, qs) in by_tag.items():
            events.extend(self.feed(tag, ts, vs, qs))
        return events

    def retire(self, ts_us: int) -> list[LimitEvent]:
        """Clear all active conditions at ``ts_us`` (e.g. a new limit set takes over)."""
        events: list[LimitEvent] = []
        for machines in self._machines.values():
            for mch in machines:
                events.extend(mch.retire(ts_us))
        return events

    def active(self) -> list[tuple[str, Condition, int]]:
        """Active conditions now: ``(tag, condition, excursion_start_us)``."""
        out: list[tuple[str, Condition, int]] = []
        for tag, machines in self._machines.items():
            for mch in machines:
                for cond, c in [
                    *mch.carries.items(),
                    (Condition.MONITORING_UNAVAILABLE, mch.monitor),
                ]:
                    if c.active:
                        out.append((tag, cond, c.exc_start_us))
        return out

    def state(self) -> dict[str, Any]:
        """JSON-able state: timers, active conditions, timeline (restore with ``from_state``)."""
        return {
            "limit_set_id": self.limit_set.id,
            "limit_set_version": self.limit_set.version,
            "apply_from_us": self.apply_from_us,
            "timeline": [[s, st] for s, st in self.timeline.changes()],
            "last_ts": dict(self._last_ts),
            "tags": {tag: [m.to_dict() for m in ms] for tag, ms in self._machines.items()},
        }

    @classmethod
    def from_state(cls, limit_set: LimitSet, state: Mapping[str, Any]) -> Evaluator:
        """Rebuild an evaluator saved by ``state()`` for the same limit set version."""
        if (state["limit_set_id"], state["limit_set_version"]) != (
            limit_set.id,
            limit_set.version,
        ):
            raise ValueError(
                f"state belongs to limit set {state['limit_set_id']} v"
                f"{state['limit_set_version']}, not {limit_set.id} v{limit_set.version}"
            )
        ev = cls(
            limit_set,
            [(int(s), str(st)) for s, st in state["timeline"]],
            apply_from_us=state["apply_from_us"],
        )
        ev._last_ts = {k: int(v) for k, v in state["last_ts"].items()}
        for tag, saved in state["tags"].items():
            machines = ev._machines.get(tag, [])
            if len(saved) != len(machines):
                raise ValueError(f"{tag}: saved state does not match the limit set entries")
            for mch, d in zip(machines, saved, strict=True):
                mch.load(d)
        return ev


def evaluate(
    limits: TagLimits | Sequence[TagLimits],
    ts_us: npt.ArrayLike,
    value: npt.ArrayLike,
    quality: npt.ArrayLike,
    timeline: ProductionTimeline | Iterable[tuple[int, str]] = (),
    *,
    limit_set_id: str = "",
    limit_set_version: int = 0,
    from_us: int | None = None,
) -> list[LimitEvent]:
    """Evaluate one tag's readings (time order) against its limits in one go.

    ``limits`` is the tag's entry, or its entries for disjoint production states.
    ``from_us`` ignores readings before it (None: all). Returns events in time order.
    """
    entries = [limits] if isinstance(limits, TagLimits) else list(limits)
    tl = timeline if isinstance(timeline, ProductionTimeline) else ProductionTimeline(timeline)
    ts, v, q = _as_arrays(ts_us, value, quality)
    events: list[LimitEvent] = []
    for entry in entries:
        events.extend(
            _EntryMachine(entry, limit_set_id, limit_set_version, from_us).step(ts, v, q, tl)
        )
    events.sort(key=lambda e: (e.ts_us, _CONDITION_ORDER[e.condition]))
    return events


@dataclass(frozen=True, slots=True)
class Excursion:
    """One excursion of one condition: from first reading beyond to the clear.

    ``end_us`` is None while still open; ``duration_us`` then runs to ``open_until_us``
    if one was given when building it, else is None. ``peak`` of an open excursion is
    the peak up to its activation.
    """

    tag: str
    condition: Condition
    start_us: int
    active_from_us: int
    end_us: int | None
    peak: float | None
    limit: float | None
    limit_set_id: str
    limit_set_version: int
    end_reason: EventReason | None
    duration_us: int | None


def excursions_from_events(
    events: Iterable[LimitEvent], open_until_us: int | None = None
) -> list[Excursion]:
    """Pair activations with their clears (events of any tags, each tag in time order)."""
    open_: dict[tuple[str, Condition], LimitEvent] = {}
    out: list[Excursion] = []
    for e in events:
        key = (e.tag, e.condition)
        if e.active:
            open_[key] = e
            continue
        a = open_.pop(key, None)
        start = a.excursion_start_us if a is not None else e.excursion_start_us
        out.append(
            Excursion(
                e.tag,
                e.condition,
                start,
                a.ts_us if a is not None else start,
                e.ts_us,
                e.peak,
                e.limit,
                e.limit_set_id,
                e.limit_set_version,
                e.reason,
                e.ts_us - start,
            )
        )
    for a in open_.values():
        out.append(
            Excursion(
                a.tag,
                a.condition,
                a.excursion_start_us,
                a.ts_us,
                None,
                a.peak,
                a.limit,
                a.limit_set_id,
                a.limit_set_version,
                None,
                None if open_until_us is None else open_until_us - a.excursion_start_us,
            )
        )
    out.sort(key=lambda x: (x.tag, x.start_us, _CONDITION_ORDER[x.condition]))
    return out


class TagSeries(NamedTuple):
    """One tag's stored readings as arrays, time order."""

    ts_us: npt.ArrayLike
    value: npt.ArrayLike
    quality: npt.ArrayLike


@dataclass(frozen=True, slots=True)
class TagSummary:
    """Per-tag what-if figures, by condition: count of excursions and time beyond (us)."""

    tag: str
    excursions: dict[Condition, int] = field(default_factory=dict)
    time_beyond_us: dict[Condition, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WhatIfResult:
    """Events, excursions and per-tag summary of a what-if evaluation (nothing written)."""

    events: dict[str, list[LimitEvent]]
    excursions: list[Excursion]
    summary: dict[str, TagSummary]


def what_if(
    limit_set: LimitSet,
    data: Mapping[str, TagSeries | tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike]],
    timeline: ProductionTimeline | Iterable[tuple[int, str]] = (),
) -> WhatIfResult:
    """Evaluate a stored period of many tags against a (proposed) limit set.

    The set is applied to the whole period as if it had been in force (its
    ``effective_from_us`` is ignored). Open excursions count up to the tag's last reading.
    Tags without limits in the set are skipped. Pure: writes nothing.
    """
    tl = timeline if isinstance(timeline, ProductionTimeline) else ProductionTimeline(timeline)
    events: dict[str, list[LimitEvent]] = {}
    excursions: list[Excursion] = []
    summary: dict[str, TagSummary] = {}
    for tag, series in data.items():
        entries = limit_set.entries_for(tag)
        if not entries:
            continue
        ts, v, q = _as_arrays(*series)
        evs = evaluate(
            entries,
            ts,
            v,
            q,
            tl,
            limit_set_id=limit_set.id,
            limit_set_version=limit_set.version,
        )
        events[tag] = evs
        exc = excursions_from_events(evs, int(ts[-1]) if len(ts) else None)
        excursions.extend(exc)
        counts: dict[Condition, int] = defaultdict(int)
        beyond: dict[Condition, int] = defaultdict(int)
        for x in exc:
            counts[x.condition] += 1
            beyond[x.condition] += x.duration_us or 0
        summary[tag] = TagSummary(tag, dict(counts), dict(beyond))
    return WhatIfResult(events, excursions, summary)
