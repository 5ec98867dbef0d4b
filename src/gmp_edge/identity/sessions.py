"""Web sessions for people who signed in (in memory: a restart signs everybody out).

The browser holds a random session id in an HttpOnly cookie; the server keeps only its
SHA-256. A session ends after ``idle_s`` without a request or ``max_s`` after sign-in,
whichever comes first. Each session carries a CSRF token the page sends back on every
write, so another site cannot make the browser act on the user's behalf.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass, replace

from gmp_edge.identity.roles import Role


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in person."""

    user_id: str
    full_name: str
    role: Role
    created_us: int
    last_seen_us: int
    csrf: str
    password_expired: bool = False


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class Sessions:
    """Live sessions, keyed by the hash of their id."""

    def __init__(self, idle_s: float = 15 * 60, max_s: float = 12 * 3600):
        self.idle_us = int(idle_s * 1_000_000)
        self.max_us = int(max_s * 1_000_000)
        self._by_digest: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(
        self, user_id: str, full_name: str, role: Role, now_us: int, password_expired: bool
    ) -> tuple[str, Session]:
        """Start a session; returns the id for the cookie (never stored) and the session."""
        sid = secrets.token_urlsafe(32)
        s = Session(
            user_id, full_name, role, now_us, now_us, secrets.token_urlsafe(24), password_expired
        )
        with self._lock:
            self._by_digest[_digest(sid)] = s
        return sid, s

    def get(self, session_id: str, now_us: int) -> Session | None:
        """The live session for ``session_id`` (touching it), or None if unknown or expired."""
        key = _digest(session_id)
        with self._lock:
            s = self._by_digest.get(key)
            if s is None:
                return None
            if now_us - s.last_seen_us > self.idle_us or now_us - s.created_us > self.max_us:
                del self._by_digest[key]
                return None
            s = replace(s, last_seen_us=now_us)
            self._by_digest[key] = s
            return s

    def close(self, session_id: str) -> Session | None:
        """End a session (sign-out); returns it if it existed."""
        with self._lock:
            return self._by_digest.pop(_digest(session_id), None)

    def close_user(self, user_id: str) -> int:
        """End every session of a user (deactivated, role changed, password reset)."""
        with self._lock:
            keys = [k for k, s in self._by_digest.items() if s.user_id == user_id]
            for k in keys:
                del self._by_digest[k]
            return len(keys)

    def password_changed(self, session_id: str) -> None:
        """Clear the expired-password flag of this session after a successful change."""
        key = _digest(session_id)
        with self._lock:
            s = self._by_digest.get(key)
            if s is not None:
                self._by_digest[key] = replace(s, password_expired=False)
