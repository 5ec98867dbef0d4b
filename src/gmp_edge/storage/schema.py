"""Versioned SQLite schemas: each store declares its migrations, opening applies them.

Several stores share one database file (the historian, the audit trail and the books
beside it all live in ``store.path``), so a version is kept per store, in the table
``schema_versions``, not in the file-wide ``PRAGMA user_version`` (ADR 0021).

A store declares a :class:`Schema`: a name unique within the file and an ordered list of
migrations, ``migrations[n]`` taking the store from version ``n`` to ``n + 1``, each
either SQL or a function of the connection. Migration 1 is the schema of the release
that had no versions (``create ... if not exists``), so a store made by that release
(no row: version 0, tables present) becomes version 1 without a change to its data.

:func:`migrate` applies the pending migrations in one transaction and records the new
version there too: a failing migration leaves the store exactly as it was. A store
whose version is newer than the code knows is refused and not touched. Each upgrade is logged
at INFO, or, inside :func:`summarised_upgrades` (the edge box's start, which opens about
a dozen stores), noted at DEBUG and logged as one INFO line at the end.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from gmp_edge.errors import GmpEdgeError

log = logging.getLogger(__name__)

Migration = str | Callable[[sqlite3.Connection], None]
"""One step: SQL statements, or a function that changes the store through the connection."""

_VERSIONS = """
create table if not exists schema_versions(
    store text primary key,
    version integer not null,
    upgraded_us integer not null
)
"""


class SchemaError(GmpEdgeError, RuntimeError):
    """A store's schema could not be brought to the version this code expects."""


class SchemaTooNew(SchemaError):
    """The store was written by a newer release; this code does not open it."""


@dataclass(frozen=True, slots=True)
class Schema:
    """What a store declares: its name in the file and its migrations, oldest first.

    ``legacy_version`` reads a version kept by an older mechanism (None: not there);
    it is asked only while the store has no row in ``schema_versions``.
    """

    name: str
    migrations: Sequence[Migration]
    legacy_version: Callable[[sqlite3.Connection], int | None] | None = None

    @property
    def version(self) -> int:
        """The version this code brings the store to."""
        return len(self.migrations)


def _statements(sql: str) -> Iterator[str]:
    # executescript would commit the open transaction first, so statements run one by
    # one; complete_statement knows that a trigger body's ';' does not end it
    pending = ""
    for piece in sql.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\r\n;"):
                yield pending
            pending = ""
    if pending.strip(" \t\r\n;"):
        raise SchemaError(f"incomplete SQL statement in a migration: {pending.strip()!r}")


def _has_versions(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "select 1 from sqlite_master where type='table' and name='schema_versions'"
    ).fetchone()
    return row is not None


def _read(conn: sqlite3.Connection, schema: Schema) -> tuple[int, bool]:
    # (version, whether schema_versions holds it)
    if _has_versions(conn):
        row = conn.execute(
            "select version from schema_versions where store=?", (schema.name,)
        ).fetchone()
        if row is not None:
            return int(row[0]), True
    if schema.legacy_version is not None:
        legacy = schema.legacy_version(conn)
        if legacy is not None:
            return legacy, False
    return 0, False


def stored_version(conn: sqlite3.Connection, schema: Schema) -> int:
    """The version the store is at now: 0 for a store that never recorded one."""
    return _read(conn, schema)[0]


def _refuse_newer(where: str, schema: Schema, version: int) -> None:
    if version > schema.version:
        raise SchemaTooNew(
            f"{where}: store {schema.name!r} is at schema version {version}, newer than "
            f"{schema.version} that this release knows; it was left untouched (use the "
            "release that wrote it)"
        )


def migrate(conn: sqlite3.Connection, schema: Schema, where: str | Path = "") -> int:
    """Bring ``schema`` up to date on ``conn`` (autocommit mode); returns its version.

    Pending migrations and the new version are one transaction (``begin immediate``,
    so two processes opening the store at once do not both migrate it). Raises
    :class:`SchemaTooNew` for a store newer than ``schema`` and :class:`SchemaError`
    when a migration fails; the store is unchanged in both cases. ``where`` names the
    file in messages.
    """
    label = str(where) or "database"
    if conn.in_transaction:
        raise SchemaError(f"{label}: migrate {schema.name!r} outside a transaction")
    current, recorded = _read(conn, schema)
    _refuse_newer(label, schema, current)
    if recorded and current == schema.version:
        return current
    conn.execute("begin immediate")
    try:
        current, recorded = _read(conn, schema)  # another process may have migrated it
        _refuse_newer(label, schema, current)
        start = current
        for n in range(current, schema.version):
            step = schema.migrations[n]
            try:
                if isinstance(step, str):
                    for statement in _statements(step):
                        conn.execute(statement)
                else:
                    step(conn)
            except Exception as exc:
                raise SchemaError(
                    f"{label}: store {schema.name!r}: migration {n} -> {n + 1} failed: {exc}"
                ) from exc
            current = n + 1
        # a version read from the older mechanism is recorded here from now on
        if current != start or not recorded:
            conn.execute(_VERSIONS)
            conn.execute(
                "insert into schema_versions(store, version, upgraded_us) values(?,?,?)"
                " on conflict(store) do update set version=excluded.version,"
                " upgraded_us=excluded.upgraded_us",
                (schema.name, current, time.time_ns() // 1000),
            )
        conn.execute("commit")
    except BaseException:
        if conn.in_transaction:
            conn.execute("rollback")
        raise
    if current != start:
        _note_upgrade(label, schema.name, start, current)
    return current


# (store name, from version, to version) of the upgrades inside summarised_upgrades()
_upgrades: ContextVar[list[tuple[str, int, int]] | None] = ContextVar(
    "schema_upgrades", default=None
)


def _note_upgrade(label: str, name: str, start: int, current: int) -> None:
    if start == 0:
        # a new store and one made before schema versions look alike here
        message = (
            f"{label}: store {name!r} now at schema version {current} (it had none: new, or "
            "made by a release before schema versions)"
        )
    else:
        message = f"{label}: store {name!r} upgraded from schema version {start} to {current}"
    collected = _upgrades.get()
    if collected is None:
        log.info("%s", message)
    else:
        collected.append((name, start, current))
        log.debug("%s", message)


@contextlib.contextmanager
def summarised_upgrades(where: str | Path) -> Iterator[None]:
    """Log the schema upgrades made inside the block as one INFO line about ``where``.

    Each upgrade is still logged at DEBUG when it happens. Stores opened in threads
    started from the block (``asyncio.to_thread`` copies the context) are counted too.
    """
    collected: list[tuple[str, int, int]] = []
    token = _upgrades.set(collected)
    try:
        yield
    finally:
        _upgrades.reset(token)
        if collected:
            steps = ", ".join(f"{name} {start}->{current}" for name, start, current in collected)
            note = (
                " (from 0: a new store, or one made before schema versions)"
                if any(start == 0 for _, start, _ in collected)
                else ""
            )
            log.info(
                "%s: %d store(s) brought to their schema version: %s%s",
                where,
                len(collected),
                steps,
                note,
            )


def open_store(path: str | Path, schema: Schema) -> sqlite3.Connection:
    """A connection to ``path`` (autocommit, usable from any thread) with ``schema`` migrated."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("pragma busy_timeout=5000")
        migrate(conn, schema, path)
    except BaseException:
        conn.close()
        raise
    return conn
