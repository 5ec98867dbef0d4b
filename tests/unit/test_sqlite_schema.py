"""The versioned-schema mechanism (gmp_edge.storage.schema), table-driven."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gmp_edge.storage.schema import (
    Migration,
    Schema,
    SchemaError,
    SchemaTooNew,
    migrate,
    open_store,
    stored_version,
    summarised_upgrades,
)

V1 = "create table if not exists things(id integer primary key, name text not null);"
V2 = "alter table things add column colour text not null default 'grey';"
V3_TRIGGER = """
create trigger if not exists things_no_delete before delete on things
begin select raise(abort, 'things stay'); end;
"""


def _add_size(conn: sqlite3.Connection) -> None:
    conn.execute("alter table things add column size integer")
    conn.execute("update things set size=length(name)")


def _fails_midway(conn: sqlite3.Connection) -> None:
    conn.execute("create table half_done(x)")  # must not survive the failure
    raise ValueError("cannot convert")


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def _dump(path: Path) -> list[str]:
    conn = _connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def _at_version(version: int) -> Callable[[sqlite3.Connection], None]:
    def setup(conn: sqlite3.Connection) -> None:
        conn.executescript(V1)
        conn.execute("insert into things(name) values('kept')")
        if version:
            conn.executescript(
                "create table schema_versions(store text primary key, version integer not null,"
                " upgraded_us integer not null);"
            )
            conn.execute("insert into schema_versions values('things', ?, 0)", (version,))

    return setup


def _old_release(conn: sqlite3.Connection) -> None:
    # the release without versions: its tables, its rows, no schema_versions table
    conn.executescript(V1)
    conn.execute("insert into things(name) values('kept')")


@dataclass
class Case:
    name: str
    migrations: tuple[Migration, ...]
    setup: Callable[[sqlite3.Connection], None] | None = None
    version: int | None = None  # expected after migrate; None: it must be refused
    error: type[Exception] | None = None
    rows: list[tuple[object, ...]] = field(default_factory=list)
    query: str = "select name from things order by id"


CASES = [
    Case("fresh store gets every migration", (V1, V2), version=2),
    Case(
        "store of the previous release (no version) is version 1, rows kept",
        (V1,),
        setup=_old_release,
        version=1,
        rows=[("kept",)],
    ),
    Case(
        "store at 0 with data is migrated to the newest",
        (V1, V2, _add_size),
        setup=_old_release,
        version=3,
        rows=[("kept", "grey", 4)],
        query="select name, colour, size from things",
    ),
    Case(
        "store at the current version is left as it is",
        (V1, V2),
        setup=_at_version(2),
        version=2,
        rows=[("kept",)],
    ),
    Case(
        "only the pending migrations run",
        (V1, "this is not sql", V2),
        setup=_at_version(2),
        version=3,
        rows=[("kept", "grey")],
        query="select name, colour from things",
    ),
    Case(
        "a trigger body's semicolons do not split it",
        (V1, V3_TRIGGER),
        version=2,
        rows=[("things_no_delete",)],
        query="select name from sqlite_master where type='trigger'",
    ),
    Case("newer than known is refused", (V1, V2), setup=_at_version(3), error=SchemaTooNew),
    Case(
        "a failing SQL migration rolls back",
        (V1, V2, "alter table things add column colour text"),
        setup=_old_release,
        error=SchemaError,
    ),
    Case(
        "a failing function migration rolls back",
        (V1, V2, _fails_midway),
        setup=_old_release,
        error=SchemaError,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_migrate(tmp_path: Path, case: Case) -> None:
    path = tmp_path / "store.db"
    conn = _connect(path)
    if case.setup is not None:
        case.setup(conn)
    before = _dump(path)
    schema = Schema("things", case.migrations)
    if case.error is not None:
        with pytest.raises(case.error, match="things"):
            migrate(conn, schema, path)
        assert not conn.in_transaction
        assert _dump(path) == before  # untouched: no partial migration, no version row
        return
    assert migrate(conn, schema, path) == case.version
    assert stored_version(conn, schema) == case.version
    if case.rows:
        assert conn.execute(case.query).fetchall() == case.rows
    # opening again changes nothing
    after = _dump(path)
    assert migrate(conn, schema, path) == case.version
    assert _dump(path) == after


def test_versions_are_per_store_in_one_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    a = Schema("a", ("create table a(x);", "alter table a add column y;"))
    b = Schema("b", ("create table b(x);",))
    conn = _connect(path)
    assert migrate(conn, a, path) == 2
    assert migrate(conn, b, path) == 1
    assert conn.execute("select store, version from schema_versions order by store").fetchall() == [
        ("a", 2),
        ("b", 1),
    ]


def test_legacy_version_is_read_while_no_row_exists(tmp_path: Path) -> None:
    path = tmp_path / "legacy.db"
    conn = _connect(path)
    conn.executescript("create table things(id integer primary key, name text);")
    seen: list[int] = []

    def legacy(c: sqlite3.Connection) -> int | None:
        seen.append(1)
        return 1

    schema = Schema("things", (V1, V2), legacy_version=legacy)
    assert migrate(conn, schema, path) == 2  # only V2 ran: V1 was taken as done
    assert [r[1] for r in conn.execute("pragma table_info(things)")] == ["id", "name", "colour"]
    seen.clear()
    assert stored_version(conn, schema) == 2
    assert seen == []  # the row wins once it exists


def test_legacy_version_newer_than_known_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "legacy.db"
    conn = _connect(path)
    schema = Schema("things", (V1,), legacy_version=lambda c: 5)
    with pytest.raises(SchemaTooNew, match="version 5, newer than 1"):
        migrate(conn, schema, path)
    assert conn.execute("select count(*) from sqlite_master").fetchone() == (0,)


def test_migrate_inside_a_transaction_is_refused(tmp_path: Path) -> None:
    conn = _connect(tmp_path / "tx.db")
    conn.execute("begin")
    with pytest.raises(SchemaError, match="outside a transaction"):
        migrate(conn, Schema("things", (V1,)))


def test_incomplete_sql_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.db"
    conn = _connect(path)
    with pytest.raises(SchemaError, match="incomplete"):
        migrate(conn, Schema("things", ("create table t(x); create table u(",)), path)
    assert conn.execute("select count(*) from sqlite_master").fetchone() == (0,)


def test_upgrade_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="gmp_edge.storage.schema")
    conn = open_store(tmp_path / "log.db", Schema("things", (V1,)))
    conn.close()
    assert "store 'things' now at schema version 1 (it had none" in caplog.text
    conn = open_store(tmp_path / "log.db", Schema("things", (V1, V2)))
    conn.close()
    assert "store 'things' upgraded from schema version 1 to 2" in caplog.text


def test_upgrades_in_a_block_are_one_info_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "many.db"
    open_store(path, Schema("things", (V1,))).close()
    caplog.set_level("INFO", logger="gmp_edge.storage.schema")
    with summarised_upgrades(path):
        open_store(path, Schema("things", (V1, V2))).close()
        open_store(path, Schema("others", (V1,))).close()
        open_store(path, Schema("others", (V1,))).close()  # up to date: not an upgrade
    info = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    assert info == [
        f"{path}: 2 store(s) brought to their schema version: things 1->2, others 0->1"
        " (from 0: a new store, or one made before schema versions)"
    ]
    caplog.clear()
    with summarised_upgrades(path):
        open_store(path, Schema("things", (V1, V2))).close()
    assert caplog.records == []  # nothing upgraded, nothing said


def test_open_store_closes_the_connection_it_could_not_migrate(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    _at_version(9)(_connect(path))
    with pytest.raises(SchemaTooNew):
        open_store(path, Schema("things", (V1,)))


def test_legacy_version_at_the_current_one_is_recorded(tmp_path: Path) -> None:
    path = tmp_path / "legacy.db"
    conn = _connect(path)
    conn.executescript(V1)
    schema = Schema("things", (V1,), legacy_version=lambda c: 1)
    assert migrate(conn, schema, path) == 1
    assert conn.execute("select store, version from schema_versions").fetchall() == [("things", 1)]
