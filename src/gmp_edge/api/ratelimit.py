"""Sign-in rate limiting (pure): a sliding window of attempts per key.

Keys are the client address and the user id tried, so one client cannot guess many
passwords and many clients cannot guess one user's password quickly. Lockout after
repeated failures (identity.users) still applies on top of this.
"""

from __future__ import annotations

import threading
from collections import deque


class RateLimiter:
    """At most ``attempts`` per ``window_s`` for each key."""

    def __init__(self, attempts: int, window_s: float):
        self.attempts = attempts
        self.window_us = int(window_s * 1_000_000)
        self._seen: dict[str, deque[int]] = {}
        self._lock = threading.Lock()

    def retry_after_s(self, key: str, now_us: int) -> float:
        """0 if an attempt is allowed now (and counts it); else seconds until it would be."""
        with self._lock:
            q = self._seen.setdefault(key, deque())
            while q and now_us - q[0] >= self.window_us:
                q.popleft()
            if len(q) >= self.attempts:
                return (q[0] + self.window_us - now_us) / 1_000_000
            q.append(now_us)
            if len(self._seen) > 10_000:  # forget idle keys so memory stays bounded
                for k in [k for k, v in self._seen.items() if not v]:
                    del self._seen[k]
            return 0.0
