"""Numbers and durations written for people: findings, report rows, page text.

A reviewer reads "peak 3,057,191" and "for 46 s", not "peak 3057190.698079267" and
"for 46.0007 s". The stored values stay exact; only their display is rounded, and never
to fewer significant digits than a limit comparison needs (four by default). This module
imports nothing of ours.
"""

from __future__ import annotations

import math

_MINUTE = 60
_HOUR = 3600
_DAY = 86_400


def number(x: float | int | None, digits: int = 4) -> str:
    """``x`` to ``digits`` significant digits, with thousands separators, never exponents
    for ordinary plant magnitudes; whole numbers at or above ``10**(digits-1)`` keep every
    digit of their integer part (a particle count is not rounded to 3,057,000)."""
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return str(x)
    v = float(x)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(v)))
    if magnitude >= digits - 1:
        whole = math.floor(abs(v) + 0.5)  # half away from zero, as people round
        return f"{'-' if v < 0 else ''}{whole:,}"
    decimals = digits - 1 - magnitude
    if decimals > 9:  # tinier than a plant signal: keep the digits, use an exponent
        return f"{v:.{digits - 1}e}"
    text = f"{v:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def duration(us: int | float | None) -> str:
    """A length of time in microseconds as "420 ms", "46 s", "2 min 5 s", "1 h 2 min", "3 d 4 h"."""
    if us is None:
        return "n/a"
    if us < 0:
        return "-" + duration(-us)
    s = us / 1e6
    if s < 1:
        ms = us / 1e3
        return f"{number(ms, 3)} ms" if ms >= 1 or ms == 0 else f"{number(us, 3)} µs"
    if s < _MINUTE:
        return f"{number(s, 3)} s"
    whole = round(s)
    d, rest = divmod(whole, _DAY)
    h, rest = divmod(rest, _HOUR)
    m, sec = divmod(rest, _MINUTE)
    parts = [(d, "d"), (h, "h"), (m, "min"), (sec, "s")]
    first = next(i for i, (n, _) in enumerate(parts) if n)
    shown = [f"{n} {unit}" for n, unit in parts[first : first + 2] if n]
    return " ".join(shown)
