"""Publish sequence numbers: the next one, and how many messages a jump skipped.

A subscription numbers its notification messages 1, 2, … 2**32-1, then 1 again (0 is
never used); a keep-alive carries the next number without consuming it.
"""

from __future__ import annotations

_SEQ_MAX = 0xFFFF_FFFF


def next_sequence_number(n: int) -> int:
    """The sequence number after ``n``: they wrap from 2**32-1 to 1 (0 is never used)."""
    return 1 if n >= _SEQ_MAX else n + 1


def sequence_gap(last: int | None, seq: int) -> int:
    """How many notification messages were lost between data message ``last`` and ``seq``.

    A data message should carry ``last + 1``; a keep-alive carries the next number to be
    used, also ``last + 1``, without consuming it. Before the first data message nothing
    can be judged (``last`` None); a repeated or older number is not a loss.
    """
    if last is None or seq <= 0:
        return 0
    distance = (seq - next_sequence_number(last)) % _SEQ_MAX  # 1.._SEQ_MAX is a ring
    return distance if distance < _SEQ_MAX // 2 else 0
