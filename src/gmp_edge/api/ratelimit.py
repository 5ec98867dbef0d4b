"""Sign-in rate limiting: a sliding window of attempts per key, kept by the ``limits`` library.

Keys are the client address and the user id tried, so one client cannot guess many
passwords and many clients cannot guess one user's password quickly. Lockout after
repeated failures (identity.users) still applies on top of this.

The strategy is the library's sliding window counter: a count per key for this window and
the previous one, the previous one weighted by how much of it still overlaps the sliding
window. Its in-memory storage drops a count once its two windows are over (a pass over the
storage shortly after each attempt), so what is held is the last two windows' keys, not
every address and user id ever tried. (The library's exact moving window keeps an empty
list per key for good, so it is not used.) See ADR 0022.

Its windows are aligned to the epoch (a window of 60 s is an epoch minute);
:func:`window_start_us` gives the same windows to code of ours, such as the aggregate audit
of refused sign-ins (``api.refusals``).
"""

from __future__ import annotations

import time

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter


def window_start_us(ts_us: int, window_s: int) -> int:
    """Start of the ``window_s`` window that ``ts_us`` falls in, aligned to the epoch as the
    library's sliding window counter aligns its windows (``int(t / window_s)``)."""
    size = window_s * 1_000_000
    return ts_us // size * size


class RateLimiter:
    """At most ``attempts`` per ``window_s`` seconds for each key."""

    def __init__(self, attempts: int, window_s: int):
        self.attempts = attempts
        self.window_s = window_s
        self._item = RateLimitItemPerSecond(attempts, window_s)
        self.storage = MemoryStorage()
        self._limiter = SlidingWindowCounterRateLimiter(self.storage)

    def retry_after_s(self, key: str) -> float:
        """0 if an attempt is allowed now (and counts it); else seconds until one would be.

        A refused attempt is not counted, so hammering does not push the wait further out.
        """
        if self._limiter.hit(self._item, key):
            return 0.0
        # the library's estimate of when the weighted count next drops (it may be early: the
        # client then gets another 429 with a fresh Retry-After)
        reset = self._limiter.get_window_stats(self._item, key).reset_time
        # a refusal never answers 0, which means "allowed", even if that moment is already here
        return max(reset - time.time(), 1e-6)

    def counts_held(self) -> int:
        """How many counts (one per key and window) the storage holds now."""
        return len(self.storage.storage)
