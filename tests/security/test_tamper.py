"""Issue 14: every store-tampering finding of the black-box probe, reproduced on a real store.

Each test builds a store the way the service does (real SQLite, real books, signatures,
users), stops cleanly (a signed stop anchor), then changes the file the way the probe did,
with the ``sqlite3`` module standing in for the ``sqlite3`` shell, and asks the two things
an inspector and the box rely on: ``gmp-edge verify`` and the start check.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from gmp_edge.audit.chain import GENESIS, canonical, entry_hash
from gmp_edge.edge.cli import main
from gmp_edge.identity.users import Directory
from gmp_edge.integrity import keys
from gmp_edge.integrity.anchoring import StoreRefused, anchor_now, preflight
from gmp_edge.integrity.anchors import anchors_path_for, read_anchors
from gmp_edge.services.integrity import verify_store
from tests.unit.test_evidence import Env, populate

ADMIN_PASSWORD = "correct horse battery staple 42"


class Box:
    """A populated store, stopped cleanly, and the commands that judge it."""

    def __init__(self, tmp: Path):
        env = Env(tmp)
        populate(env)
        users = Directory(env.db, env.trail)
        users.create_first_administrator("admin.ada", "Ada Admin", ADMIN_PASSWORD)
        users.close()
        for i in range(60):  # enough audit entries to rewrite from seq 40
            env.trail.append("op.olga", "note", "test", f"n{i}", "filler")
        env.close()
        anchor_now(env.db, "start", at_us=1)  # the anchors a run leaves: start ... stop
        anchor_now(env.db, "stop")
        self.db = env.db
        self.config = env.config_path

    def sql(self, *statements: str) -> None:
        conn = sqlite3.connect(self.db, isolation_level=None)
        try:
            for s in statements:
                conn.execute(s)
        finally:
            conn.close()

    def problems(self) -> list[str]:
        return verify_store(self.db).problems()

    def refused(self) -> str:
        with pytest.raises(StoreRefused) as exc:
            preflight(self.db)
        return str(exc.value)


@pytest.fixture
def box(tmp_path: Path) -> Box:
    return Box(tmp_path)


def joined(lines: list[str]) -> str:
    return "\n".join(lines)


def test_an_untouched_store_verifies_and_starts(box: Box, capsys) -> None:
    assert box.problems() == []
    assert not preflight(box.db).crashed
    assert main(["verify", "--config", str(box.config)]) == 0
    out = capsys.readouterr().out
    assert "VERIFIED" in out and "NOT VERIFIED" not in out
    assert "seal ledger" in out and "anchors: 2 checked" in out


def test_deleting_the_newest_audit_entries_after_dropping_the_trigger(box: Box, capsys) -> None:
    box.sql(
        "drop trigger audit_no_delete",
        "delete from audit where seq > (select max(seq) - 3 from audit)",
    )
    assert "the store ends at audit entry" in joined(box.problems())
    assert "the store ends at audit entry" in box.refused()
    assert main(["verify", "--config", str(box.config)]) == 1
    assert "NOT VERIFIED" in capsys.readouterr().out
    assert main(["audit", "verify", "--config", str(box.config)]) == 1  # it reads the anchors now


def _append_forged(db: Path) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    seq, prev = conn.execute("select seq, hash from audit order by seq desc limit 1").fetchone()
    body = canonical(seq + 1, 1, "qa.ann", "batch.released", "batch", "B-1", "", None, None)
    conn.execute(
        "insert into audit values(?,?,?,?,?,?,?,?,?,?,?)",
        (
            seq + 1,
            1,
            "qa.ann",
            "batch.released",
            "batch",
            "B-1",
            "",
            "null",
            "null",
            prev,
            entry_hash(prev, body),
        ),
    )
    conn.close()


def test_a_forged_entry_with_a_correct_sha256_after_a_clean_stop(box: Box) -> None:
    _append_forged(box.db)
    problems = joined(box.problems())
    assert "follow the stop anchor" in problems
    assert "written while gmp-edge was stopped" in box.refused()


def test_rewriting_the_trail_from_entry_40_and_restoring_the_triggers(box: Box) -> None:
    conn = sqlite3.connect(box.db, isolation_level=None)
    conn.execute("drop trigger audit_no_update")
    rows = conn.execute(
        "select seq, ts_us, actor, action, record_type, record_id, reason, old, new"
        " from audit order by seq"
    ).fetchall()
    prev = GENESIS
    for seq, ts, actor, action, rtype, rid, reason, old, new in rows:
        if seq >= 40:
            actor = "someone.else"
        digest = entry_hash(
            prev,
            canonical(seq, ts, actor, action, rtype, rid, reason, json.loads(old), json.loads(new)),
        )
        conn.execute(
            "update audit set actor=?, prev_hash=?, hash=? where seq=?", (actor, prev, digest, seq)
        )
        prev = digest
    conn.execute(
        "create trigger audit_no_update before update on audit"
        " begin select raise(abort, 'the audit trail is append-only'); end"
    )
    conn.close()
    problems = joined(box.problems())
    assert "audit trail broken" not in problems  # the chain itself is consistent again...
    assert "differs from the stop anchor" in problems  # ...but not the one that was anchored
    assert "the trail was rewritten" in box.refused()


def test_changing_readings_users_and_signatures_outside_the_product(box: Box) -> None:
    box.sql(
        "update readings set value = value + 100 where rowid = 7",
        "update users set role = 'qa_approver' where id = 'admin.ada'",
        "drop trigger signatures_no_delete",
        "delete from signatures where signer = 'qp.quinn'",
        "insert into readings(tag_id, ts_us, ts_edge_us, value, quality) values(1, 1, 1, 99.0, 0)",
    )
    problems = joined(box.problems())
    assert "rows changed outside gmp-edge" in problems  # the reading
    assert "users row 'admin.ada' differs from its seal" in problems
    assert "signatures rowid 2 was deleted outside gmp-edge" in problems
    assert "readings were never sealed" in problems
    # the heads still match the anchors: the start check (cheap) lets it run, verify names it
    preflight(box.db)


def test_an_emptied_store_is_refused_not_started_as_new(box: Box, capsys) -> None:
    for suffix in ("", "-wal", "-shm"):
        p = Path(f"{box.db}{suffix}")
        if p.exists():
            p.write_bytes(b"")
    assert "is empty, but its anchors" in box.refused()
    assert main(["run", "--config", str(box.config)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("gmp-edge not started: store ") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_replaced_older_copy_is_refused(box: Box, tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    other = Box(tmp_path / "other")  # another box's store, at the same path
    os.replace(other.db, box.db)
    for suffix in ("-wal", "-shm"):
        Path(f"{box.db}{suffix}").unlink(missing_ok=True)
    assert "does not match its anchors" in box.refused()
    assert "differs from the start anchor" in joined(box.problems())


def _corrupt_middle(db: Path) -> None:
    size = db.stat().st_size
    page = 4096
    assert size > 8 * page
    with db.open("r+b") as f:
        f.seek((size // page // 2) * page)
        f.write(os.urandom(page))


def test_corrupt_pages_in_the_middle_are_one_clear_line(box: Box, capsys) -> None:
    _corrupt_middle(box.db)
    refusal = box.refused()
    assert "is damaged" in refusal and "restore it from a backup" in refusal
    assert any("SQLite integrity" in p or "not a readable" in p for p in box.problems())
    assert main(["run", "--config", str(box.config)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("damage", ["truncated", "bad header"])
def test_a_truncated_file_or_a_bad_header_is_one_clear_line(box: Box, capsys, damage) -> None:
    data = box.db.read_bytes()
    box.db.write_bytes(data[: len(data) // 3] if damage == "truncated" else b"X" * 100 + data[100:])
    assert "is damaged" in box.refused()
    assert main(["run", "--config", str(box.config)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_an_edited_anchor_fails_its_signature(box: Box) -> None:
    path = anchors_path_for(box.db)
    lines = path.read_text().splitlines()
    first = json.loads(lines[0])
    first["audit_seq"] = 3
    lines[0] = json.dumps(first)
    path.write_text("\n".join(lines) + "\n")
    assert "the signature does not match its content" in joined(box.problems())


def test_anchors_signed_with_another_key_are_named(box: Box) -> None:
    keys.key_path_for(box.db).unlink()
    keys.load_or_create(keys.key_path_for(box.db))  # a new key: the old anchors are not its
    assert "not by this box's key" in joined(box.problems())


def test_after_a_crash_the_unanchored_tail_is_expected(box: Box) -> None:
    anchor_now(box.db, "periodic")  # a run that then dies: no stop anchor
    _append_forged(box.db)  # stands for what the run wrote after its last anchor
    pre = preflight(box.db)
    assert pre.crashed and pre.unanchored_audit == 1
    assert box.problems() == []  # a tail after a periodic anchor is not a finding


def test_an_administrator_can_accept_a_reviewed_tail(box: Box, monkeypatch, capsys) -> None:
    _append_forged(box.db)
    base = ["verify", "--config", str(box.config), "--accept-tail", "CLI user add, ticket 7"]
    monkeypatch.setattr("sys.stdin", _Lines("wrong password\n"))
    assert main([*base, "--by", "admin.ada", "--password-stdin"]) == 1
    monkeypatch.setattr("sys.stdin", _Lines(ADMIN_PASSWORD + "\n"))
    assert main([*base, "--by", "admin.ada", "--password-stdin"]) == 0
    capsys.readouterr()
    preflight(box.db)  # starts again
    anchors, _ = read_anchors(anchors_path_for(box.db))
    assert anchors[-1].kind == "accepted"
    assert main(["audit", "list", "--config", str(box.config), "--record-type", "store"]) == 0
    assert "integrity.tail_accepted" in capsys.readouterr().out


class _Lines:
    def __init__(self, text: str):
        self.lines = text.splitlines(keepends=True)

    def readline(self) -> str:
        return self.lines.pop(0) if self.lines else ""


def test_creating_the_first_administrator_on_a_stopped_store_lets_it_start(
    tmp_path: Path, monkeypatch
) -> None:
    # the documented first install: start once, stop, create the administrator, start again
    env = Env(tmp_path)
    env.close()
    anchor_now(env.db, "stop")
    monkeypatch.setattr("sys.stdin", _Lines(ADMIN_PASSWORD + "\n"))
    argv = ["users", "create-admin", "--config", str(env.config_path)]
    assert main([*argv, "--user-id", "admin.ada", "--name", "Ada", "--password-stdin"]) == 0
    preflight(env.db)  # not refused: the command anchored what it wrote
    assert read_anchors(anchors_path_for(env.db))[0][-1].kind == "cli"
