"""Batch-period trace charts drawn straight into the PDF (reportlab vector paths).

One chart per tag: the Good values' min-max envelope and mean per window, alert (amber,
dashed) and action (red) lines of every limit version in force, excursions shaded, gaps
hatched in grey and labelled. Drawn as vectors, so a 500-tag report stays small and
renders in seconds without a plotting library.
"""

from __future__ import annotations

import math

import numpy as np
from reportlab.lib import colors
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable

from gmp_edge.numfmt import number
from gmp_edge.review.model import TagReview
from gmp_edge.timefmt import utc_datetime

ENVELOPE = colors.Color(0.55, 0.7, 0.9)
MEAN = colors.Color(0.05, 0.2, 0.55)
ALERT = colors.Color(0.93, 0.6, 0.0)
ACTION = colors.Color(0.8, 0.0, 0.0)
GAP = colors.Color(0.55, 0.55, 0.55)


def _nice_ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def _fmt(x: float) -> str:
    # "140,000" on a particle axis, not "1.4e+05"; the ticks are round numbers already
    return number(x)


def _runs(has: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index ranges of the consecutive True values in ``has``."""
    edges = np.diff(np.concatenate([[0], has.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _path_ops(xs: np.ndarray, ys: np.ndarray) -> str:
    """PDF path operators of a polyline: ``x y m`` then ``x y l`` per further point."""
    pts = np.empty(2 * xs.size, dtype=np.float64)
    pts[0::2], pts[1::2] = xs, ys
    return ("%.2f %.2f m\n" + "%.2f %.2f l\n" * (xs.size - 1)) % tuple(pts.tolist())


class TraceChart(Flowable):
    """A tag's batch-period trace (``TagReview.trace``) with limits, excursions and gaps."""

    def __init__(self, tag: TagReview, start_us: int, end_us: int, width: float, height: float):
        super().__init__()
        self.tag = tag
        self.start_us = start_us
        self.end_us = max(end_us, start_us + 1)
        self.width = width
        self.height = height

    def wrap(self, avail_width: float, avail_height: float) -> tuple[float, float]:
        """Fixed size."""
        return self.width, self.height

    def _y_range(self) -> tuple[float, float]:
        tr = self.tag.trace
        vals: list[float] = []
        if tr is not None:
            vals += [x for x in tr.min if x == x] + [x for x in tr.max if x == x]
        for lim in self.tag.limits:
            vals += [
                x
                for x in (lim.alert_high, lim.action_high, lim.alert_low, lim.action_low)
                if x is not None
            ]
        if not vals:
            return 0.0, 1.0
        lo, hi = min(vals), max(vals)
        if hi - lo < 1e-9:
            pad = abs(hi) * 0.05 or 1.0
            return lo - pad, hi + pad
        pad = (hi - lo) * 0.06
        return lo - pad, hi + pad

    def draw(self) -> None:
        """Draw on ``self.canv``."""
        c: Canvas = self.canv
        t = self.tag
        left, bottom, right, top = 42.0, 14.0, self.width - 4.0, self.height - 12.0
        pw, ph = right - left, top - bottom
        y0, y1 = self._y_range()
        span = self.end_us - self.start_us

        def x_of(us: int) -> float:
            return left + pw * (min(max(us, self.start_us), self.end_us) - self.start_us) / span

        def y_of(v: float) -> float:
            return bottom + ph * (v - y0) / (y1 - y0)

        c.saveState()
        c.setFont("Helvetica-Bold", 7)
        unit = f" [{t.unit}]" if t.unit else ""
        c.drawString(0, self.height - 8, f"{t.tag}{unit}")
        c.setFont("Helvetica", 6)
        # excursions shaded
        for e in t.excursions:
            col = ACTION if e.level == "action" else ALERT
            c.setFillColor(col, alpha=0.18)
            xa, xb = x_of(e.start_us), x_of(e.end_us if e.end_us is not None else self.end_us)
            c.rect(xa, bottom, max(xb - xa, 0.6), ph, stroke=0, fill=1)
        # gaps hatched
        for g in t.gaps:
            xa = x_of(g.start_us)
            xb = x_of(g.end_us if g.end_us is not None else self.end_us)
            w = max(xb - xa, 0.8)
            c.setFillColor(GAP, alpha=0.25)
            c.rect(xa, bottom, w, ph, stroke=0, fill=1)
            c.setStrokeColor(GAP)
            c.setLineWidth(0.3)
            p = c.beginPath()
            x = xa
            while x < xa + w:
                p.moveTo(x, bottom)
                p.lineTo(min(x + 4, xa + w), bottom + min(4, ph))
                x += 3
            c.drawPath(p, stroke=1, fill=0)
            c.setFillColor(GAP)
            c.drawString(xa + 1, top - 7, f"gap ({g.cause})")
        # envelope and mean: one literal path per run of windows with values. Formatted
        # in one go rather than a lineTo call per point: a 500-tag report has 900,000
        # points, and per-point path calls were most of its rendering time
        tr = t.trace
        if tr is not None and tr.start_us:
            mid = np.asarray(tr.start_us, dtype=np.float64) + tr.window_us // 2
            xs = left + pw * (np.clip(mid, self.start_us, self.end_us) - self.start_us) / span
            mean = np.asarray(tr.mean, dtype=np.float64)
            y_mn = bottom + ph * (np.asarray(tr.min, dtype=np.float64) - y0) / (y1 - y0)
            y_mx = bottom + ph * (np.asarray(tr.max, dtype=np.float64) - y0) / (y1 - y0)
            y_mean = bottom + ph * (mean - y0) / (y1 - y0)
            runs = _runs(~np.isnan(mean))
            c.setFillColor(ENVELOPE)
            c.setStrokeColor(ENVELOPE)
            c.setLineWidth(0.4)
            for a, b in runs:
                ring_x = np.concatenate([xs[a:b], xs[a:b][::-1]])
                ring_y = np.concatenate([y_mx[a:b], y_mn[a:b][::-1]])
                c.addLiteral(_path_ops(ring_x, ring_y) + "h B")  # close, fill and stroke
            c.setStrokeColor(MEAN)
            c.setLineWidth(0.6)
            for a, b in runs:
                c.addLiteral(_path_ops(xs[a:b], y_mean[a:b]) + "S")
        # limits (each version over the time it was in force)
        for lim in t.limits:
            xa = x_of(lim.from_us)
            xb = x_of(lim.to_us if lim.to_us is not None else self.end_us)
            for value, col, dash in (
                (lim.alert_high, ALERT, (3, 2)),
                (lim.alert_low, ALERT, (3, 2)),
                (lim.action_high, ACTION, ()),
                (lim.action_low, ACTION, ()),
            ):
                if value is None:
                    continue
                c.setStrokeColor(col)
                c.setLineWidth(0.8)
                c.setDash(*dash) if dash else c.setDash()
                c.line(xa, y_of(value), xb, y_of(value))
                c.setDash()
                c.setFillColor(col)
                c.drawRightString(right - 1, y_of(value) + 1.5, f"v{lim.version} {_fmt(value)}")
        # axes
        c.setStrokeColor(colors.black)
        c.setLineWidth(0.5)
        c.rect(left, bottom, pw, ph, stroke=1, fill=0)
        c.setFillColor(colors.black)
        for v in _nice_ticks(y0, y1):
            y = y_of(v)
            c.line(left - 2, y, left, y)
            c.drawRightString(left - 3, y - 2, _fmt(v))
        hours = span / 3.6e9
        # from 10 s for a short batch to a week; at most 8 ticks
        steps_h = (10 / 3600, 30 / 3600, 1 / 60, 2 / 60, 5 / 60, 10 / 60, 0.25, 0.5, 1, 2, 4, 6)
        step_h = next((s for s in (*steps_h, 12, 24, 48) if hours / s <= 8), 168)
        step = int(step_h * 3600e6)
        tick = (self.start_us // step + 1) * step
        while tick < self.end_us:
            x = x_of(tick)
            c.line(x, bottom - 2, x, bottom)
            dt = utc_datetime(tick)
            label = dt.strftime(
                "%H:%M:%S" if step_h < 1 / 60 else "%H:%M" if hours <= 48 else "%m-%d %H:%M"
            )
            c.drawCentredString(x, bottom - 8, label)
            tick += step
        c.drawRightString(right, bottom - 8 if hours > 48 else 1, "UTC")
        if tr is None or not any(m == m for m in tr.mean):  # NaN != NaN: no values
            c.setFont("Helvetica-Oblique", 8)
            c.drawCentredString(left + pw / 2, bottom + ph / 2, "no Good values in the period")
        c.restoreState()
