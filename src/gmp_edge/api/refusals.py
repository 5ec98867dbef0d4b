"""Refused sign-ins, audited in aggregate: one entry per client and window, not per request.

A sign-in refused by the rate limit (a 429) changes nothing, but it is evidence of an attack.
Audited one fsync'd row per request, a burst of four clients wrote about 245 rows a second
and filled a small disk in seconds. Here the first refusal of a client in a window is
audited at once (``signin.rate_limited``: the attack is visible immediately) and logged in
one WARNING line; further refusals in that window are only counted, in memory. When the
window is over (seen at the next sign-in attempt after it, or at :meth:`SignInRefusals.flush`
on shutdown) one ``signin.rate_limited.summary`` entry per client gives the count, the first
and last time, and the user ids tried.

Memory is bounded: at most ``max_clients`` clients are tallied per window, refusals from
any further client are counted together in one "other clients" tally, and each tally keeps
at most :data:`SHOWN_USER_IDS` user ids and counts distinct ones up to :data:`MAX_DISTINCT`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass, field

from gmp_edge.api.ratelimit import window_start_us
from gmp_edge.audit.trail import AuditTrail
from gmp_edge.clock import SYSTEM_CLOCK, Clock
from gmp_edge.timefmt import iso

log = logging.getLogger("gmp_edge.api.signin")

OPENED = "signin.rate_limited"
SUMMARY = "signin.rate_limited.summary"
#: clients tallied one by one per window; beyond, a hostile address set shares one tally
MAX_CLIENTS = 64
#: user ids named in a summary (the first distinct ones tried)
SHOWN_USER_IDS = 10
#: distinct user ids (and, in the other clients' tally, clients) counted exactly; beyond it a
#: summary says "at least" (each one counted costs a hash kept until the window ends)
MAX_DISTINCT = 256
#: who the other clients' tally is audited as (no one address stands for them)
OTHER_CLIENTS = "system:signin"


@dataclass
class _Distinct:
    """Counts distinct strings up to MAX_DISTINCT, by hash (the strings are not kept)."""

    hashes: set[int] = field(default_factory=set)
    capped: bool = False

    def add(self, value: str) -> bool:
        """Count ``value``; True when it was not seen before (as far as can be told)."""
        h = hash(value)
        if h in self.hashes:
            return False
        if len(self.hashes) >= MAX_DISTINCT:
            self.capped = True
            return False
        self.hashes.add(h)
        return True

    def out(self) -> dict[str, object]:
        """The count, and whether it is a lower bound."""
        return {"count": len(self.hashes), "at_least": self.capped}


@dataclass
class _Tally:
    """The refusals of one client (or of the other clients) in the current window."""

    first_us: int
    last_us: int
    count: int = 0
    user_ids: list[str] = field(default_factory=list)
    distinct_ids: _Distinct = field(default_factory=_Distinct)
    clients: _Distinct = field(default_factory=_Distinct)
    opened: bool = False  # the immediate entry is in the trail

    def add(self, client: str, user_id: str, ts_us: int) -> None:
        """Count one refusal."""
        self.count += 1
        self.last_us = ts_us
        self.clients.add(client)
        if self.distinct_ids.add(user_id) and len(self.user_ids) < SHOWN_USER_IDS:
            self.user_ids.append(user_id)


class SignInRefusals:
    """Audits refused sign-ins per client and window: the first at once, the rest summed.

    ``window_s`` is the sign-in limiter's window; windows are aligned to the epoch as the
    limiter's counts are (:func:`gmp_edge.api.ratelimit.window_start_us`). Thread-safe
    (sync routes run in a thread pool).
    """

    def __init__(
        self,
        trail: AuditTrail,
        window_s: int,
        clock: Clock = SYSTEM_CLOCK,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        self.trail = trail
        self.window_s = window_s
        self.clock = clock
        self.max_clients = max_clients
        self._lock = threading.Lock()
        self._window_us: int | None = None  # start of the window the tallies belong to
        self._tallies: dict[str, _Tally] = {}
        self._others: _Tally | None = None
        self._write_failed = False  # logged once per window, not per request

    def refused(self, client: str, user_id: str, wait_s: float) -> None:
        """Count a refused sign-in of ``user_id`` from ``client`` (who must wait ``wait_s``);
        audit and log it if it is the client's first in this window."""
        now = self.clock.now_us()
        with self._lock:
            self._close_if_over(now)
            if self._window_us is None:
                self._window_us = window_start_us(now, self.window_s)
            others = client not in self._tallies and len(self._tallies) >= self.max_clients
            if others:
                tally = self._others = self._others or _Tally(now, now)
            else:
                tally = self._tallies.setdefault(client, _Tally(now, now))
            tally.add(client, user_id, now)
            if tally.count == 1:
                self._open(tally, client, user_id, wait_s, others)

    def close_if_over(self) -> int:
        """Write the summaries of a window that has ended; how many were written."""
        with self._lock:
            return self._close_if_over(self.clock.now_us())

    def flush(self) -> int:
        """Write the summaries of the current window now (shutdown: its counts would be
        lost otherwise) and start afresh; how many were written."""
        with self._lock:
            return self._close()

    def tallied(self) -> int:
        """How many tallies are held (the clients of this window, plus the others' one)."""
        with self._lock:
            return len(self._tallies) + (self._others is not None)

    def _window_end_us(self) -> int:
        assert self._window_us is not None
        return self._window_us + self.window_s * 1_000_000

    def _close_if_over(self, now: int) -> int:
        if self._window_us is None or now < self._window_end_us():
            return 0
        return self._close()

    def _close(self) -> int:
        written = 0
        if self._window_us is not None:
            for client, tally in self._tallies.items():
                written += self._summarise(tally, f"client:{client}", client)
            if self._others is not None:
                written += self._summarise(self._others, OTHER_CLIENTS, "other clients")
        self._window_us = None
        self._tallies = {}
        self._others = None
        self._write_failed = False
        return written

    def _open(self, tally: _Tally, client: str, user_id: str, wait_s: float, others: bool) -> None:
        until = iso(self._window_end_us())
        if others:
            actor = OTHER_CLIENTS
            why = (
                f"sign-in attempts over the limit from more than {self.max_clients} clients "
                f"(this one {client}); retry in {wait_s:.0f} s; refusals from further clients "
                f"until {until} are counted together and summarised then"
            )
            log.warning(
                "sign-in refused for more than %d clients (now %s); further clients' "
                "refusals until %s are counted together, not logged",
                self.max_clients,
                client,
                until,
            )
        else:
            actor = f"client:{client}"
            why = (
                f"sign-in attempts over the limit; retry in {wait_s:.0f} s; further refusals "
                f"from this client until {until} are counted and summarised then"
            )
            log.warning(
                "sign-in refused for client %s (over the limit); further refusals until %s "
                "are counted, not logged",
                client,
                until,
            )
        tally.opened = self._append(actor, OPENED, "user", user_id, why, {"client": client})

    def _summarise(self, tally: _Tally, actor: str, who: str) -> int:
        if tally.count == 1 and tally.opened:
            return 0  # the entry written at once says it all
        first, last = iso(tally.first_us), iso(tally.last_us)
        ids = tally.distinct_ids.out()
        at_least = "at least " if ids["at_least"] else ""
        new: dict[str, object] = {
            "window_start": iso(self._window_us),
            "window_end": iso(self._window_end_us()),
            "refused": tally.count,
            "first": first,
            "last": last,
            "user_ids": tally.user_ids,
            "distinct_user_ids": ids,
        }
        if actor == OTHER_CLIENTS:
            new["clients"] = tally.clients.out()
        why = (
            f"{tally.count} sign-in attempts from {who} refused over the limit between "
            f"{first} and {last}; {at_least}{ids['count']} distinct user id(s) tried"
        )
        log.info("%s", why)
        return int(self._append(actor, SUMMARY, "api", "/api/session", why, new))

    def _append(
        self, actor: str, action: str, record_type: str, record_id: str, why: str, new: object
    ) -> bool:
        try:
            self.trail.append(actor, action, record_type, record_id, why, None, new)
        except (sqlite3.Error, OSError) as exc:
            # a full disk must not turn a refusal into a 500 with a traceback per request;
            # the counts stay in memory for the summary
            if not self._write_failed:
                self._write_failed = True
                log.error("audit trail refused a sign-in refusal entry: %s", exc)
            return False
        return True
