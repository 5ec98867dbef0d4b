"""Is this store still the original record? One verdict for the CLI and the health check.

Composes SQLite's own integrity check, the audit chain, the seal ledger and the signed
anchors (ADR 0027) over one read snapshot, and says in sentences what is wrong.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gmp_edge.audit.chain import Break
from gmp_edge.audit.trail import verify_chain
from gmp_edge.integrity import keys
from gmp_edge.integrity.anchors import anchors_path_for, read_anchors
from gmp_edge.integrity.check import (
    AnchorReport,
    LedgerReport,
    Progress,
    Scrub,
    check_anchors,
    check_ledger,
    has_table,
    sqlite_integrity,
)
from gmp_edge.storage.lock import LockUnavailable, StoreInUse, StoreLock


@dataclass
class StoreVerdict:
    """Everything ``gmp-edge verify`` found about one store."""

    store: Path
    sqlite: list[str] = field(default_factory=list)
    audit_entries: int = 0
    audit_head: str = ""
    audit_break: Break | None = None
    ledger: LedgerReport | None = None
    anchors: AnchorReport | None = None
    key_fingerprint: str | None = None
    key_problem: str | None = None
    running: bool = False
    sqlite_checked: bool = False
    # a periodic check's scrub: the seal head it checked through and where the next starts
    checked_through: int = 0
    scrub_next: int = 1

    def problems(self) -> list[str]:
        """Every problem, one sentence each (empty: the store is the original record)."""
        out = list(self.sqlite)
        if self.key_problem:
            out.append(self.key_problem)
        if self.audit_break is not None:
            out.append(
                f"audit trail broken at entry {self.audit_break.seq}: {self.audit_break.reason}"
            )
        if self.ledger is not None:
            out += self.ledger.findings.lines()
        if self.anchors is not None:
            out += self.anchors.findings.lines()
        return out

    @property
    def verified(self) -> bool:
        """No problem at all."""
        return not self.problems()

    def summary(self) -> list[str]:
        """What was checked, one line a part, for people."""
        lines = [f"store {self.store}" + (" (gmp-edge is running on it)" if self.running else "")]
        # only what was checked is called ok (an export and 'audit verify' leave it out)
        sqlite = (
            "not checked here" if not self.sqlite_checked else "FAILED" if self.sqlite else "ok"
        )
        lines.append("  SQLite integrity: " + sqlite)
        if self.audit_break is None:
            lines.append(
                f"  audit trail: {self.audit_entries:,} entries chained,"
                f" head sha256 {self.audit_head}"
            )
        if self.ledger is not None:
            led = self.ledger
            lines.append(
                f"  seal ledger: {led.blocks:,} blocks; {led.readings:,} readings and"
                f" {led.rows:,} record rows recomputed, head sha256 {led.head_sha256}"
            )
        if self.anchors is not None:
            a = self.anchors
            if a.newest is None:
                lines.append("  anchors: none written yet")
            else:
                lines.append(
                    f"  anchors: {a.anchors:,} checked against the store and the box key"
                    f" {self.key_fingerprint or '(no key)'}; newest {a.newest.describe()};"
                    f" since then {a.unanchored_audit} audit entries,"
                    f" {a.unanchored_blocks} seal blocks"
                )
        return lines


def _running(store: Path) -> bool:
    lock = StoreLock(store)
    try:
        lock.acquire()
    except StoreInUse:
        return True
    except LockUnavailable:
        return False
    lock.release()
    return False


def _public_key(
    store: Path, expect: str | None
) -> tuple[Ed25519PublicKey | None, str | None, str | None]:
    path = keys.key_path_for(store)
    if not path.exists():
        return None, None, f"the box key {path} is missing: anchor signatures cannot be checked"
    try:
        public = keys.load_or_create(path).public_key()
    except keys.SigningKeyError as exc:
        return None, None, str(exc)
    fp = keys.fingerprint(public)
    if expect and expect.lower() != fp:
        return public, fp, f"the box key {path} has fingerprint {fp}, not the expected {expect}"
    return public, fp, None


def verify_store(
    store: Path,
    expect_fingerprint: str | None = None,
    progress: Progress | None = None,
    scrub: Scrub | None = None,
    sqlite_check: bool = True,
) -> StoreVerdict:
    """Check ``store`` end to end; never writes to it. With ``scrub`` (the running store's
    periodic check) the readings are recomputed only in the scrub's windows; without
    ``sqlite_check`` SQLite's own check (a read of the whole file) is left out."""
    return _verdict(
        Path(store), expect_fingerprint, progress, whole=True, scrub=scrub, sqlite=sqlite_check
    )


def verify_for_export(store: Path, *, scrub: Scrub | None = None) -> StoreVerdict:
    """The check an evidence export records: the chains, the other tables, the anchors and
    the batch's readings, not SQLite's read of the whole file (minutes on a big store, too
    long for a download; the periodic check runs it)."""
    return verify_store(store, scrub=scrub, sqlite_check=False)


def verify_anchors_only(store: Path) -> StoreVerdict:
    """The anchors and their signatures against the store, without recomputing the ledger
    (what ``gmp-edge audit verify`` adds to its walk of the chain)."""
    return _verdict(Path(store), None, None, whole=False)


def _verdict(
    store: Path,
    expect_fingerprint: str | None,
    progress: Progress | None,
    whole: bool,
    scrub: Scrub | None = None,
    sqlite: bool = True,
) -> StoreVerdict:
    v = StoreVerdict(store)
    v.running = _running(store)
    if whole and sqlite:
        v.sqlite = sqlite_integrity(store)
        v.sqlite_checked = True
        if v.sqlite:
            return v  # a damaged file: what it would say further is not to be trusted
    public, v.key_fingerprint, v.key_problem = _public_key(store, expect_fingerprint)
    anchors, unreadable = read_anchors(anchors_path_for(store))  # before the snapshot
    if not whole and not anchors and not unreadable:
        v.key_problem = None  # nothing signed yet: nothing to check a key against
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        conn.execute("begin")  # one snapshot for every check
        if whole:
            v.audit_entries, v.audit_head, v.audit_break = verify_chain(conn)
            if progress is not None:
                progress(f"audit trail: {v.audit_entries:,} entries walked")
            windows = None
            if scrub is not None and has_table(conn, "seal_blocks"):
                windows, v.checked_through, v.scrub_next = scrub.plan(conn)
            v.ledger = check_ledger(conn, progress, windows)
        v.anchors = check_anchors(conn, anchors, unreadable, public, v.running)
    finally:
        conn.close()
    return v
