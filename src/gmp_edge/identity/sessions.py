"""Web sessions for people who signed in (in memory: a restart signs everybody out).

The browser holds a random session id in an HttpOnly cookie; the server keeps only its
SHA-256. A session ends after ``idle_s`` without a request or ``max_s`` after sign-in,
whichever comes first. Only what the person does counts as a request here: the live page's
background refresh (every 2 s) reads the session without touching it, or an unattended
page would keep it alive until ``max_s``. Each session carries a CSRF token the page sends
back on every write, so another site cannot make the browser act on the user's behalf.
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
    # the account's credential when the session began (Directory.credential_stamp): a
    # password changed since, in this process or another (the box's command line), ends it
    stamp: str = ""


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
        self,
        user_id: str,
        full_name: str,
        role: Role,
        now_us: int,
        password_expired: bool,
        stamp: str = "",
    ) -> tuple[str, Session]:
        """Start a session; returns the id for the cookie (never stored) and the session."""
        sid = secrets.token_urlsafe(32)
        s = Session(
            user_id,
            full_name,
            role,
            now_us,
            now_us,
            secrets.token_urlsafe(24),
            password_expired,
            stamp,
        )
        with self._lock:
            self._by_digest[_digest(sid)] = s
        return sid, s

    def get(self, session_id: str, now_us: int, touch: bool = True) -> Session | None:
        """The live session for ``session_id``, or None if unknown or expired.

        ``touch`` (a request the person made) restarts the idle time; a background
        refresh passes False and leaves it running.
        """
        key = _digest(session_id)
        with self._lock:
            s = self._by_digest.get(key)
            if s is None:
                return None
            if now_us - s.last_seen_us > self.idle_us or now_us - s.created_us > self.max_us:
                del self._by_digest[key]
                return None
            if not touch:
                return s
            s = replace(s, last_seen_us=now_us)
            self._by_digest[key] = s
            return s

    def close(self, session_id: str) -> Session | None:
        """End a session (sign-out); returns it if it existed."""
        with self._lock:
            return self._by_digest.pop(_digest(session_id), None)

    def close_user(self, user_id: str, keep: str | None = None) -> int:
        """End every session of a user (deactivated, role changed, password changed or
        reset) but the one whose id is ``keep`` (the session that changed the password);
        returns how many ended."""
        kept = None if keep is None else _digest(keep)
        with self._lock:
            keys = [k for k, s in self._by_digest.items() if s.user_id == user_id and k != kept]
            for k in keys:
                del self._by_digest[k]
            return len(keys)

    def password_changed(self, session_id: str, stamp: str | None = None) -> None:
        """After a successful change in this session: clear its expired-password flag and
        give it the new credential ``stamp`` (so it stays valid)."""
        key = _digest(session_id)
        with self._lock:
            s = self._by_digest.get(key)
            if s is not None:
                s = replace(s, password_expired=False)
                self._by_digest[key] = s if stamp is None else replace(s, stamp=stamp)
