"""SQLite persistence of alarms, deviations, batches, limit sets and engine state.

Everything lives in the edge box's database file (the audit trail's ``path``). Every write
that changes a GMP record runs inside :meth:`audit.trail.AuditTrail.atomic`, so the change
and its audit entries land together or not at all. Model objects are stored as JSON
(their ``to_dict``) next to a few indexed columns for queries. Times are int µs UTC.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from gmp_edge.alarms.model import Alarm
from gmp_edge.alarms.model import Transition as AlarmTransition
from gmp_edge.audit.book import RecordBook, SignableBook
from gmp_edge.audit.trail import AuditTransaction
from gmp_edge.clock import now_us
from gmp_edge.deviations.autoraise import affected_batches
from gmp_edge.deviations.batch import Batch, batch_id_problem
from gmp_edge.deviations.model import Deviation, StaleVersion
from gmp_edge.deviations.model import Transition as DeviationTransition
from gmp_edge.errors import GmpEdgeError
from gmp_edge.limits.model import LimitSet
from gmp_edge.storage.query import where_clause
from gmp_edge.storage.schema import Schema, open_store
from gmp_edge.timefmt import utc_datetime

PROPOSED = "proposed"
APPROVED = "approved"
SUPERSEDED = "superseded"
REJECTED = "rejected"


class RecordError(GmpEdgeError, ValueError):
    """A record could not be stored or changed; the message says why."""


class RecordNotFound(RecordError):
    """No such record."""


def _dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# --------------------------------------------------------------------------- alarms

_ALARM_SCHEMA = """
create table if not exists alarms(
    id text primary key,
    tag text not null,
    state text not null,
    last_transition_us integer,
    json text not null
);
create index if not exists alarms_state on alarms(state, last_transition_us);
create table if not exists alarm_transitions(
    id integer primary key autoincrement,
    alarm_id text not null,
    tag text not null,
    at_us integer not null,
    json text not null
);
create index if not exists alarm_transitions_at on alarm_transitions(at_us);
create index if not exists alarm_transitions_tag on alarm_transitions(tag, at_us);
"""


class AlarmBook(RecordBook):
    """Alarm points (current state) and the journal of their transitions."""

    schema = Schema("alarms", (_ALARM_SCHEMA,))

    def get(self, alarm_id: str) -> Alarm | None:
        """The alarm point, or None."""
        row = self._one("select json from alarms where id=?", (alarm_id,))
        return None if row is None else Alarm.from_dict(json.loads(row[0]))

    def all(self) -> list[Alarm]:
        """Every alarm point, by id."""
        rows = self._all("select json from alarms order by id")
        return [Alarm.from_dict(json.loads(r[0])) for r in rows]

    def active(self) -> list[Alarm]:
        """Alarm points not in state normal, newest transition first."""
        rows = self._all(
            "select json from alarms where state<>'normal'"
            " order by coalesce(last_transition_us, -1) desc, id"
        )
        return [Alarm.from_dict(json.loads(r[0])) for r in rows]

    def save(self, alarm: Alarm, transitions: Sequence[AlarmTransition]) -> None:
        """Upsert the alarm, append its transitions and one audit entry per transition.

        All in one transaction: if any part fails, nothing is written.
        """
        for t in transitions:
            if t.alarm_id != alarm.id:
                raise RecordError(
                    f"transition of alarm {t.alarm_id!r} cannot be saved with alarm {alarm.id!r}"
                )
        with self.trail.atomic() as tx:
            tx.conn.execute(
                "insert into alarms(id, tag, state, last_transition_us, json) values(?,?,?,?,?)"
                " on conflict(id) do update set tag=excluded.tag, state=excluded.state,"
                " last_transition_us=excluded.last_transition_us, json=excluded.json",
                (
                    alarm.id,
                    alarm.tag,
                    alarm.state.value,
                    alarm.last_transition_us,
                    _dumps(alarm.to_dict()),
                ),
            )
            for t in transitions:
                tx.conn.execute(
                    "insert into alarm_transitions(alarm_id, tag, at_us, json) values(?,?,?,?)",
                    (t.alarm_id, t.tag, t.at_us, _dumps(t.to_dict())),
                )
                tx.append(**t.audit_kwargs())

    def history(
        self,
        tag: str | None = None,
        start_us: int | None = None,
        end_us: int | None = None,
        limit: int = 1000,
    ) -> list[AlarmTransition]:
        """Transitions in ``[start_us, end_us)`` (of ``tag`` if given), oldest first.

        At most ``limit``: the first ones from ``start_us`` on, as ``AuditTrail.entries``.
        """
        where, args = where_clause(("tag=?", tag), ("at_us>=?", start_us), ("at_us<?", end_us))
        sql = f"select json from alarm_transitions{where} order by at_us, id limit ?"
        args.append(limit)
        return [AlarmTransition.from_dict(json.loads(r[0])) for r in self._all(sql, args)]


# ----------------------------------------------------------------------- deviations

_DEVIATION_SCHEMA = """
create table if not exists deviations(
    id text primary key,
    status text not null,
    version integer not null,
    discovered_us integer not null,
    raised_by text not null,
    updated_us integer not null,
    json text not null
);
create index if not exists deviations_status on deviations(status, discovered_us);
create index if not exists deviations_discovered on deviations(discovered_us);
create table if not exists deviation_batches(
    deviation_id text not null,
    batch_id text not null,
    primary key(deviation_id, batch_id)
);
create index if not exists deviation_batches_batch on deviation_batches(batch_id);
"""


def _year(at_us: int) -> int:
    return utc_datetime(at_us).year


class DeviationBook(SignableBook[Deviation]):
    """Deviation records (signable: ``record_type`` = ``deviation``)."""

    record_type = "deviation"
    not_found = RecordNotFound
    schema = Schema("deviations", (_DEVIATION_SCHEMA,))

    def next_id(self, at_us: int) -> str:
        """The next free id of the year of ``at_us``: ``DEV-2026-0001``, ``DEV-2026-0002``..."""
        prefix = f"DEV-{_year(at_us)}-"
        rows = self._all("select id from deviations where id like ?", (prefix + "%",))
        seqs = [int(s) for (i,) in rows if (s := i[len(prefix) :]).isdigit()]
        return f"{prefix}{max(seqs, default=0) + 1:04d}"

    @staticmethod
    def _check(dev: Deviation, transition: DeviationTransition) -> None:
        if transition.deviation_id != dev.id:
            raise RecordError(
                f"transition of deviation {transition.deviation_id!r} cannot be stored with "
                f"deviation {dev.id!r}"
            )

    @staticmethod
    def _link_batches(conn: sqlite3.Connection, dev: Deviation) -> None:
        conn.execute("delete from deviation_batches where deviation_id=?", (dev.id,))
        conn.executemany(
            "insert or ignore into deviation_batches(deviation_id, batch_id) values(?,?)",
            [(dev.id, b) for b in dev.affected_batch_ids],
        )

    def create(self, dev: Deviation, transition: DeviationTransition) -> Deviation:
        """Store a new deviation and its audit entry, one transaction; refuses a known id."""
        self._check(dev, transition)
        with self.trail.atomic() as tx:
            try:
                tx.conn.execute(
                    "insert into deviations(id, status, version, discovered_us, raised_by,"
                    " updated_us, json) values(?,?,?,?,?,?,?)",
                    (
                        dev.id,
                        dev.status.value,
                        dev.version,
                        dev.discovered_us,
                        dev.raised_by,
                        transition.at_us,
                        _dumps(dev.to_dict()),
                    ),
                )
            except sqlite3.IntegrityError:
                raise RecordError(f"deviation {dev.id} exists already") from None
            self._link_batches(tx.conn, dev)
            tx.append(**transition.audit_kwargs())
        return dev

    def update(
        self, dev: Deviation, transition: DeviationTransition, expected_version: int
    ) -> Deviation:
        """Store ``dev`` (version ``expected_version + 1``) and its audit entry, one tx.

        If the stored deviation is not at ``expected_version`` any more, nothing is written
        and StaleVersion is raised; an unknown deviation raises RecordNotFound.
        """
        self._check(dev, transition)
        if dev.version != expected_version + 1:
            raise RecordError(
                f"deviation {dev.id}: the new version must be {expected_version + 1}, "
                f"not {dev.version}"
            )
        with self.trail.atomic() as tx:
            cur = tx.conn.execute(
                "update deviations set status=?, version=?, updated_us=?, json=?"
                " where id=? and version=?",
                (
                    dev.status.value,
                    dev.version,
                    transition.at_us,
                    _dumps(dev.to_dict()),
                    dev.id,
                    expected_version,
                ),
            )
            if cur.rowcount == 0:
                row = tx.conn.execute(
                    "select version from deviations where id=?", (dev.id,)
                ).fetchone()
                if row is None:
                    raise RecordNotFound(f"no deviation {dev.id!r}")
                raise StaleVersion(dev.id, expected_version, int(row[0]))
            self._link_batches(tx.conn, dev)
            tx.append(**transition.audit_kwargs())
        return dev

    def get(self, dev_id: str) -> Deviation | None:
        """The deviation as it is now, or None."""
        row = self._one("select json from deviations where id=?", (dev_id,))
        return None if row is None else Deviation.from_dict(json.loads(row[0]))

    def list(self, status: str | None = None, limit: int = 1000) -> list[Deviation]:
        """Deviations (of ``status`` if given), newest (by discovery) first."""
        if status is None:
            rows = self._all(
                "select json from deviations order by discovered_us desc, id desc limit ?",
                (limit,),
            )
        else:
            rows = self._all(
                "select json from deviations where status=?"
                " order by discovered_us desc, id desc limit ?",
                (status, limit),
            )
        return [Deviation.from_dict(json.loads(r[0])) for r in rows]

    def for_batch(self, batch_id: str) -> builtins.list[Deviation]:
        """Deviations naming ``batch_id`` among their affected batches, newest first."""
        rows = self._all(
            "select d.json from deviations d join deviation_batches b on b.deviation_id=d.id"
            " where b.batch_id=? order by d.discovered_us desc, d.id desc",
            (batch_id,),
        )
        return [Deviation.from_dict(json.loads(r[0])) for r in rows]

    def about_batch(self, batch: Batch, now_us: int) -> builtins.list[Deviation]:
        """Every deviation that concerns ``batch``, oldest first: those linked to it when
        raised or amended, and those whose excursion was under way in its rooms or on its
        equipment during its period (up to ``now_us`` while it runs). A batch registered
        after the fact (back-dated) did not exist when the deviation was raised and linked."""
        end = batch.end_us if batch.end_us is not None else max(now_us, batch.start_us + 1)
        found = {d.id: d for d in self.for_batch(batch.id)}
        for d in self.with_evidence_in(batch.start_us, end):
            touches = d.evidence is not None and affected_batches(d.evidence, [batch])
            if d.id not in found and touches:
                found[d.id] = d
        return sorted(found.values(), key=lambda d: (d.discovered_us, d.id))

    def with_evidence_in(self, start_us: int, end_us: int) -> builtins.list[Deviation]:
        """Deviations whose excursion (evidence) was under way at some time in
        ``[start_us, end_us)``, oldest first: the candidates for a batch registered after
        the fact, whose stored links were made before the batch existed."""
        rows = self._all(
            "select json from deviations"
            " where json_extract(json, '$.evidence.start_us') < ?"
            " and coalesce(json_extract(json, '$.evidence.end_us'), ?) >= ?"
            " order by discovered_us, id",
            (end_us, end_us, start_us),
        )
        return [Deviation.from_dict(json.loads(r[0])) for r in rows]

    # SignableBook: the whole deviation record as it is now, raised by
    signable = get

    def signed_content(self, record: Deviation) -> object:
        """The whole deviation record as it is now."""
        return record.to_dict()

    def author_of(self, record: Deviation) -> str:
        """Who raised the deviation."""
        return record.raised_by


# -------------------------------------------------------------------------- batches

_BATCH_SCHEMA = """
create table if not exists batches(
    id text primary key,
    product text not null,
    start_us integer not null,
    end_us integer,
    json text not null
);
create index if not exists batches_start on batches(start_us);
create index if not exists batches_end on batches(end_us);
"""


class BatchBook(RecordBook):
    """Production batches: when and where they ran."""

    schema = Schema("batches", (_BATCH_SCHEMA,))

    def start(self, actor: str, batch: Batch, reason: str = "") -> Batch:
        """Record a batch (audited ``batch.started``); refuses an id that exists already
        and one that breaks the batch-id rule."""
        problem = batch_id_problem(batch.id)
        if problem:
            raise RecordError(problem)
        with self.trail.atomic() as tx:
            try:
                tx.conn.execute(
                    "insert into batches(id, product, start_us, end_us, json) values(?,?,?,?,?)",
                    (
                        batch.id,
                        batch.product,
                        batch.start_us,
                        batch.end_us,
                        _dumps(batch.to_dict()),
                    ),
                )
            except sqlite3.IntegrityError:
                raise RecordError(f"batch {batch.id} exists already") from None
            tx.append(actor, "batch.started", "batch", batch.id, reason, None, batch.to_dict())
        return batch

    def end(self, actor: str, batch_id: str, end_us: int, reason: str = "") -> Batch:
        """Record the end of a batch in progress (audited ``batch.ended``)."""
        with self.trail.atomic() as tx:
            row = tx.conn.execute("select json from batches where id=?", (batch_id,)).fetchone()
            if row is None:
                raise RecordNotFound(f"no batch {batch_id!r}")
            old = Batch.from_dict(json.loads(row[0]))
            if old.end_us is not None:
                raise RecordError(f"batch {batch_id} has ended already (at {old.end_us} µs)")
            if end_us < old.start_us:
                raise RecordError(f"batch {batch_id} cannot end before it started")
            new = replace(old, end_us=end_us)
            tx.conn.execute(
                "update batches set end_us=?, json=? where id=?",
                (end_us, _dumps(new.to_dict()), batch_id),
            )
            tx.append(
                actor,
                "batch.ended",
                "batch",
                batch_id,
                reason,
                {"end_us": None},
                {"end_us": end_us},
            )
        return new

    def get(self, batch_id: str) -> Batch | None:
        """The batch, or None."""
        row = self._one("select json from batches where id=?", (batch_id,))
        return None if row is None else Batch.from_dict(json.loads(row[0]))

    def list(self, start_us: int | None = None, end_us: int | None = None) -> list[Batch]:
        """Batches in progress at some time in ``[start_us, end_us)``, newest first.

        None for either bound leaves that side open (see ``Batch.overlaps``).
        """
        where, args = where_clause(
            ("start_us<=?", end_us), ("(end_us is null or end_us>=?)", start_us)
        )
        sql = f"select json from batches{where} order by start_us desc, id desc"
        batches = [Batch.from_dict(json.loads(r[0])) for r in self._all(sql, args)]
        lo = start_us if start_us is not None else -(2**62)
        return [b for b in batches if b.overlaps(lo, end_us)]

    def in_progress(self) -> builtins.list[Batch]:
        """Batches that have not ended, newest first."""
        rows = self._all(
            "select json from batches where end_us is null order by start_us desc, id desc"
        )
        return [Batch.from_dict(json.loads(r[0])) for r in rows]


# ----------------------------------------------------------------------- limit sets

_LIMIT_SCHEMA = """
create table if not exists limit_sets(
    id text not null,
    version integer not null,
    status text not null,
    origin text not null,            -- proposal | baseline
    proposed_by text not null,
    approved_by text,
    effective_from_us integer not null,
    created_us integer not null,
    decided_by text,
    decided_us integer,
    json text not null,
    primary key(id, version)
);
create index if not exists limit_sets_status on limit_sets(id, status);
"""


def limit_set_record_id(set_id: str, version: int) -> str:
    """The signable record id of a limit-set version: ``<id>@v<version>``."""
    return f"{set_id}@v{version}"


def parse_limit_set_record_id(record_id: str) -> tuple[str, int] | None:
    """Inverse of :func:`limit_set_record_id` (None if it is not of that form)."""
    set_id, sep, version = record_id.rpartition("@v")
    if not sep or not set_id or not version.isdigit():
        return None
    return set_id, int(version)


def _same_limits(a: LimitSet, b: LimitSet) -> bool:
    """Same content apart from what storing assigns (version, effective time, approval)."""
    return replace(a, version=b.version, effective_from_us=b.effective_from_us).digest() == (
        b.digest()
    )


class LimitSetBook(SignableBook[LimitSet]):
    """Versioned limit sets (signable: ``record_type`` = ``limit_set``, id ``<id>@v<n>``)."""

    record_type = "limit_set"
    not_found = RecordNotFound
    schema = Schema("limit_sets", (_LIMIT_SCHEMA,))

    def _row(self, conn: sqlite3.Connection, set_id: str, version: int) -> tuple[LimitSet, str]:
        row = conn.execute(
            "select json, status from limit_sets where id=? and version=?", (set_id, version)
        ).fetchone()
        if row is None:
            raise RecordNotFound(f"no limit set {limit_set_record_id(set_id, version)}")
        return LimitSet.from_dict(json.loads(row[0])), str(row[1])

    @staticmethod
    def _next_version(conn: sqlite3.Connection, set_id: str) -> int:
        row = conn.execute("select max(version) from limit_sets where id=?", (set_id,)).fetchone()
        return 1 if row is None or row[0] is None else int(row[0]) + 1

    @staticmethod
    def _insert(conn: sqlite3.Connection, ls: LimitSet, status: str, origin: str, now: int) -> None:
        decided = (ls.approved_by, now) if status == APPROVED else (None, None)
        conn.execute(
            "insert into limit_sets(id, version, status, origin, proposed_by, approved_by,"
            " effective_from_us, created_us, decided_by, decided_us, json)"
            " values(?,?,?,?,?,?,?,?,?,?,?)",
            (
                ls.id,
                ls.version,
                status,
                origin,
                ls.proposed_by,
                ls.approved_by,
                ls.effective_from_us,
                now,
                *decided,
                _dumps(ls.to_dict()),
            ),
        )

    @staticmethod
    def _approved(conn: sqlite3.Connection, set_id: str) -> LimitSet | None:
        row = conn.execute(
            "select json from limit_sets where id=? and status=? order by version desc limit 1",
            (set_id, APPROVED),
        ).fetchone()
        return None if row is None else LimitSet.from_dict(json.loads(row[0]))

    def _supersede(
        self, tx: AuditTransaction, actor: str, prev: LimitSet | None, by: LimitSet
    ) -> None:
        if prev is None:
            return
        tx.conn.execute(
            "update limit_sets set status=? where id=? and version=?",
            (SUPERSEDED, prev.id, prev.version),
        )
        tx.append(
            actor,
            "limit_set.superseded",
            self.record_type,
            limit_set_record_id(prev.id, prev.version),
            f"superseded by version {by.version}",
            {"status": APPROVED},
            {"status": SUPERSEDED, "superseded_by": by.version},
        )

    def propose(self, actor: str, limit_set: LimitSet, reason: str) -> LimitSet:
        """Store a new version (max + 1 for that id) with status proposed (audited)."""
        if not reason.strip():
            raise RecordError("say why the limits are changed")
        if not actor.strip():
            raise RecordError("a proposal needs the proposer's user id")
        now = now_us()
        with self.trail.atomic() as tx:
            version = self._next_version(tx.conn, limit_set.id)
            ls = replace(limit_set, version=version, proposed_by=actor, approved_by=None)
            self._insert(tx.conn, ls, PROPOSED, "proposal", now)
            tx.append(
                actor,
                "limit_set.proposed",
                self.record_type,
                limit_set_record_id(ls.id, version),
                reason,
                None,
                ls.content(),
            )
        return ls

    def install_baseline(self, limit_set: LimitSet, source: str) -> tuple[LimitSet, bool]:
        """Install the limits of the validated configuration file, if they changed.

        Compared without version, effective time and approval (which storing assigns):
        if the approved set in force is the same, or the last baseline installed is the
        same (the configuration did not change since; an approved proposal may be in force
        after it), returns the set in force and False. Otherwise stores it as the next
        version, approved by ``source``, effective now, supersedes the previous approved
        one (audited ``limit_set.installed``) and returns it and True.
        """
        now = now_us()
        with self.trail.atomic() as tx:
            current = self._approved(tx.conn, limit_set.id)
            if current is not None and _same_limits(limit_set, current):
                return current, False
            row = tx.conn.execute(
                "select json from limit_sets where id=? and origin='baseline'"
                " order by version desc limit 1",
                (limit_set.id,),
            ).fetchone()
            if current is not None and row is not None:
                last_baseline = LimitSet.from_dict(json.loads(row[0]))
                if _same_limits(limit_set, last_baseline):
                    return current, False
            version = self._next_version(tx.conn, limit_set.id)
            ls = replace(limit_set, version=version, approved_by=source, effective_from_us=now)
            self._insert(tx.conn, ls, APPROVED, "baseline", now)
            self._supersede(tx, source, current, ls)
            tx.append(
                source,
                "limit_set.installed",
                self.record_type,
                limit_set_record_id(ls.id, version),
                "validated configuration",
                None if current is None else current.content(),
                ls.content(),
            )
        return ls, True

    def approve(self, actor: str, set_id: str, version: int, effective_from_us: int) -> LimitSet:
        """Proposed -> approved (by ``actor``, in force from ``effective_from_us``).

        The previous approved version of that id becomes superseded. Refused if the version
        is not proposed or ``actor`` proposed it (separation of duties). One transaction.
        """
        now = now_us()
        rid = limit_set_record_id(set_id, version)
        with self.trail.atomic() as tx:
            ls, status = self._row(tx.conn, set_id, version)
            if status != PROPOSED:
                raise RecordError(f"limit set {rid} is {status}, only a proposal can be approved")
            if actor == ls.proposed_by:
                raise RecordError(
                    f"limit set {rid} was proposed by {actor}; somebody else must approve it"
                )
            prev = self._approved(tx.conn, set_id)
            new = replace(ls, approved_by=actor, effective_from_us=effective_from_us)
            tx.conn.execute(
                "update limit_sets set status=?, approved_by=?, effective_from_us=?,"
                " decided_by=?, decided_us=?, json=? where id=? and version=?",
                (
                    APPROVED,
                    actor,
                    effective_from_us,
                    actor,
                    now,
                    _dumps(new.to_dict()),
                    set_id,
                    version,
                ),
            )
            self._supersede(tx, actor, prev, new)
            tx.append(
                actor,
                "limit_set.approved",
                self.record_type,
                rid,
                "",
                {"status": PROPOSED, "effective_from_us": ls.effective_from_us},
                {
                    "status": APPROVED,
                    "approved_by": actor,
                    "effective_from_us": effective_from_us,
                    "supersedes": None if prev is None else prev.version,
                },
            )
        return new

    def reject(self, actor: str, set_id: str, version: int, reason: str) -> LimitSet:
        """Proposed -> rejected (audited ``limit_set.rejected``); a reason is required."""
        if not reason.strip():
            raise RecordError("say why the proposal is rejected")
        rid = limit_set_record_id(set_id, version)
        with self.trail.atomic() as tx:
            ls, status = self._row(tx.conn, set_id, version)
            if status != PROPOSED:
                raise RecordError(f"limit set {rid} is {status}, only a proposal can be rejected")
            tx.conn.execute(
                "update limit_sets set status=?, decided_by=?, decided_us=?"
                " where id=? and version=?",
                (REJECTED, actor, now_us(), set_id, version),
            )
            tx.append(
                actor,
                "limit_set.rejected",
                self.record_type,
                rid,
                reason,
                {"status": PROPOSED},
                {"status": REJECTED},
            )
        return ls

    def current(self, set_id: str) -> LimitSet | None:
        """The approved version in force (None if none was ever approved)."""
        with self._lock:
            return self._approved(self._conn, set_id)

    def status(self, set_id: str, version: int) -> str | None:
        """proposed / approved / superseded / rejected, or None if unknown."""
        row = self._one("select status from limit_sets where id=? and version=?", (set_id, version))
        return None if row is None else str(row[0])

    def get(self, set_id: str, version: int) -> LimitSet | None:
        """One version, or None."""
        row = self._one("select json from limit_sets where id=? and version=?", (set_id, version))
        return None if row is None else LimitSet.from_dict(json.loads(row[0]))

    def history(self, set_id: str | None = None) -> list[tuple[LimitSet, str]]:
        """Versions with their status (of ``set_id`` if given), newest first."""
        if set_id is None:
            rows = self._all(
                "select json, status from limit_sets order by created_us desc, id, version desc"
            )
        else:
            rows = self._all(
                "select json, status from limit_sets where id=? order by version desc", (set_id,)
            )
        return [(LimitSet.from_dict(json.loads(r[0])), str(r[1])) for r in rows]

    # SignableBook: a version by its record id ``<id>@v<n>``
    def signable(self, record_id: str) -> LimitSet | None:
        """The version ``<id>@v<n>`` names, or None."""
        parsed = parse_limit_set_record_id(record_id)
        return None if parsed is None else self.get(*parsed)

    def signed_content(self, record: LimitSet) -> object:
        """``LimitSet.content()``."""
        return record.content()

    def author_of(self, record: LimitSet) -> str:
        """Who proposed the version."""
        return record.proposed_by


# --------------------------------------------------------------------- engine state

_STATE_SCHEMA = """
create table if not exists engine_state(
    key text primary key,
    json text not null,
    updated_us integer not null
);
"""
STATE_SCHEMA = Schema("engine_state", (_STATE_SCHEMA,))


class EngineState:
    """Small JSON documents the engine keeps across restarts (not GMP records: no audit)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._conn = open_store(self.path, STATE_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def load(self, key: str) -> dict | None:
        """The value saved under ``key``, or None."""
        with self._lock:
            row = self._conn.execute("select json from engine_state where key=?", (key,)).fetchone()
        if row is None:
            return None
        value = json.loads(row[0])
        return value if isinstance(value, dict) else None

    def save(self, key: str, value: dict) -> None:
        """Store ``value`` under ``key`` (replacing any earlier one); committed on return."""
        text = _dumps(value)
        with self._lock:
            self._conn.execute(
                "insert into engine_state(key, json, updated_us) values(?,?,?)"
                " on conflict(key) do update set json=excluded.json,"
                " updated_us=excluded.updated_us",
                (key, text, now_us()),
            )
