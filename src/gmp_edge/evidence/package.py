"""Build a batch's evidence package: a ZIP of the batch record, signed by the edge box.

Contents (in this order; docs/decisions/0016-evidence-package.md explains each):

=============================  ==========================================================
``readings.csv``               every reading of every tag in the batch scope (tags whose
                               path names one of the batch's rooms or equipment) with
                               ``ts_us`` in the batch window, in commit order, all columns
``seal_chain.jsonl``           the seal ledger's blocks (ADR 0027) from the first that sealed
                               a row of readings.csv (or the anchored one, if lower) up to
                               the package's head, one JSON array a block; see below
``gaps.csv``                   gaps of those tags overlapping the window
``alarm_transitions.json``     alarm transitions of those tags in the window
``excursions/deviations.json`` deviations naming the batch, each with its signature manifest
``limit_sets.json``            limit-set versions in force at some time in the window
``service_runs.json``          service runs overlapping the window (config hash of each)
``audit.json``                 the audit-trail segment from the first to the last entry
                               about any of the above, complete, so its chain is checkable
``signatures.json``            signatures on the batch decision (``batch_decision``/<id>)
``review.json``                the reviewer's compiled review, if given
``config/<file>``              the plant configuration file, byte for byte
``config.sha256``              its SHA-256 (``sha256sum -c`` format)
``public_key.pem``             the edge box's Ed25519 public key
``manifest.json``              path, size and SHA-256 of every file above, and the facts
``manifest.sig``               raw 64-byte Ed25519 signature over manifest.json's bytes
=============================  ==========================================================

**Chain heads** (the manifest's ``seal``): the package's head (block seq and hash, read on
the readings' snapshot): the first block an anchor signs at or after every block of the
batch, else the ledger head at export; the newest signed anchor at or below it (its line of
``<store>.anchors`` verbatim: the verifier checks its Ed25519 signature with the box key)
and how many blocks follow it unanchored. ``seal_chain.jsonl`` gives every block of the
segment with all the content its hash covers, so the chain is recomputed up to the head;
each block that sealed rows of readings.csv says how many (``csv_rows``), their rowids
(``csv_rowids``, runs of [first, count]) and how far they prove them (``proof``). A block's
readings digest combines one SHA-256 per equipment group (``integrity.digest``); the block
line carries the digests of the groups readings.csv does not hold whole
(``other_groups``: other rooms' equipment), so the verifier recomputes the rest from the
rows here: ``full``. ``chain``: the block also sealed readings of the batch's own
equipment outside the window (at its start or end), so a group is only partly here; those
rows are proven only by the chain (the block exists, is chained to the head and anchored,
and sealed that many readings in that rowid range). The manifest
says in sentences which is which (``seal.proof``), and carries the verdict of the store
check (``gmp-edge verify``) run at export (``store_check_at_export``): whole but for the
readings, which it recomputes in the blocks that sealed readings.csv (straddling ones
included: the box vouches for those at export) rather than in the store's whole history.

Identical inputs give identical bytes: fixed ZIP timestamps and attributes, fixed order,
sorted JSON keys, and Ed25519 signatures are deterministic; only ``now_us`` (the manifest's
``created_at``) changes from one export to the next.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import socket
import sqlite3
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from gmp_edge.audit.trail import COLUMNS as AUDIT_COLUMNS
from gmp_edge.csvcell import neutralise_row
from gmp_edge.errors import GmpEdgeError
from gmp_edge.evidence.readings_csv import (
    _ALL,
    _WORKERS,
    ExportError,
    readonly,
    snapshot,
    write_readings,
)
from gmp_edge.evidence.verify import SEAL_COLUMNS
from gmp_edge.historian.store import record_spans
from gmp_edge.integrity import covered, keys
from gmp_edge.integrity.anchors import Anchor, anchors_path_for, parse_anchors
from gmp_edge.integrity.check import Retentions, Scrub, has_table
from gmp_edge.integrity.digest import GENESIS, RowsHasher
from gmp_edge.integrity.groups import TagGroups
from gmp_edge.timefmt import iso

if TYPE_CHECKING:
    from gmp_edge.audit.trail import AuditTrail
    from gmp_edge.config import PlantConfig
    from gmp_edge.historian.store import Store
    from gmp_edge.monitoring.engine import Books
    from gmp_edge.signatures.register import SignatureRegister

FORMAT = "gmp-edge-evidence"
FORMAT_VERSION = 2  # 2: the chain heads (seal_chain.jsonl, manifest "seal") and the store check
SEAL_FILE = "seal_chain.jsonl"
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a ZIP can say: fixed, so bytes repeat
GAPS_COLUMNS = ("id", "tag", "start_us", "start", "end_us", "end", "cause", "message")
BATCH_DECISION = "batch_decision"


class EvidenceError(GmpEdgeError, ValueError):
    """The package cannot be built (unknown batch, unreadable config); nothing is written."""


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file in the package as the manifest lists it."""

    path: str
    size: int
    sha256: str


class StoreCheck(Protocol):
    """The verdict of the store check (``services.integrity.verify_store``), as far as the
    package records it."""

    @property
    def verified(self) -> bool:
        """No problem at all."""
        ...

    def problems(self) -> list[str]:
        """Every problem, one sentence each."""
        ...

    def summary(self) -> list[str]:
        """What was checked, one line a part."""
        ...


class StoreChecker(Protocol):
    """``services.integrity.verify_store``: the caller passes it in (it sits above this
    layer); ``scrub`` names the blocks whose readings it recomputes."""

    def __call__(self, store: Path, *, scrub: Scrub | None = None) -> StoreCheck:
        """Check the store at ``store``, read-only."""
        ...


@dataclass(frozen=True)
class PackageInfo:
    """What was written."""

    path: Path
    size: int
    sha256: str  # of the whole ZIP file
    batch_id: str
    created_at_us: int
    key_fingerprint: str
    readings: int
    readings_per_tag: dict[str, int]
    audit_head: tuple[int, str]
    files: list[FileEntry] = field(default_factory=list)
    seconds: float = 0.0  # time taken to build
    seal_head: tuple[int, str] = (0, GENESIS.hex())  # the ledger head the package proves up to
    store_verified: bool | None = None  # the store check at export (None: not run)


# ------------------------------------------------------------------------------ helpers


def _json(obj: object) -> bytes:
    return (json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()


class _ZipWriter:
    """Adds members with fixed metadata and records their size and SHA-256."""

    def __init__(self, zf: zipfile.ZipFile):
        self.zf = zf
        self.files: list[FileEntry] = []

    @staticmethod
    def _info(path: str, level: int | None) -> zipfile.ZipInfo:
        """Fixed metadata; ``level`` None: stored, else deflated at that level."""
        info = zipfile.ZipInfo(path, date_time=ZIP_DATE_TIME)
        info.compress_type = zipfile.ZIP_STORED if level is None else zipfile.ZIP_DEFLATED
        info.create_system = 3  # Unix, whatever the exporting OS
        info.external_attr = 0o100644 << 16
        info._compresslevel = level  # type: ignore[attr-defined]  # zf.open(info) honours it
        return info

    @contextmanager
    def stream(self, path: str, level: int | None = 6) -> Iterator[Callable[[bytes], None]]:
        """Write a member piece by piece (``write(chunk)``), hashing as it goes
        (``level`` None: stored uncompressed)."""
        digest = hashlib.sha256()
        size = 0
        with self.zf.open(self._info(path, level), "w", force_zip64=True) as member:

            def write(chunk: bytes) -> None:
                nonlocal size
                digest.update(chunk)
                size += len(chunk)
                member.write(chunk)

            yield write
        self.files.append(FileEntry(path, size, digest.hexdigest()))

    def add(self, path: str, data: bytes, *, listed: bool = True) -> None:
        """Write a whole member; ``listed=False`` keeps it out of the manifest's list."""
        self.zf.writestr(self._info(path, 6), data)
        if listed:
            self.files.append(FileEntry(path, len(data), hashlib.sha256(data).hexdigest()))


def in_batch_scope(path: str, rooms: set[str], equipment: set[str]) -> bool:
    """A tag path naming one of the batch's rooms (3rd segment) or equipment (4th)."""
    seg = path.split("/")
    return (len(seg) > 2 and seg[2] in rooms) or (len(seg) > 3 and seg[3] in equipment)


# -------------------------------------------------------------------------- the records


def _sig_dict(sig: Any, valid: bool | None, why: str) -> dict[str, Any]:
    return {
        "id": sig.id,
        "record_type": sig.record_type,
        "record_id": sig.record_id,
        "content_sha256": sig.content_sha256,
        "signer": sig.signer,
        "printed_name": sig.printed_name,
        "meaning": str(sig.meaning),
        "ts_us": sig.ts_us,
        "ts": iso(sig.ts_us),
        "reason": sig.reason,
        "valid": valid,
        "why": why,
    }


def _signature_manifest(
    register: SignatureRegister, record_type: str, record_id: str, content: object | None
) -> dict[str, Any]:
    """Signatures on a record with their validity against the record's current content.

    The register's own manifest when the record type is registered there; otherwise the
    content hash is computed here from ``content`` (None: validity not assessed).
    """
    from gmp_edge.signatures.manifest import content_hash, status

    if record_type in register.record_types():
        m = register.manifest(record_type, record_id)
        return {
            "record_type": record_type,
            "record_id": record_id,
            "content_sha256": m.content_sha256,
            "signatures": [_sig_dict(s.signature, s.valid, s.why) for s in m.signatures],
        }
    sigs = register.signatures(record_type, record_id)
    if content is None:
        why = f"record type {record_type!r} is not registered; validity not assessed"
        return {
            "record_type": record_type,
            "record_id": record_id,
            "content_sha256": None,
            "signatures": [_sig_dict(s, None, why) for s in sigs],
        }
    current = content_hash(record_type, record_id, content)
    return {
        "record_type": record_type,
        "record_id": record_id,
        "content_sha256": current,
        "signatures": [_sig_dict(s, st.valid, st.why) for s in sigs for st in [status(s, current)]],
    }


def _limit_versions(books: Books, start_us: int, end_us: int) -> list[tuple[Any, str, int | None]]:
    """(LimitSet, status, in force until) of every version in force at some time in the window.

    A version approved (now approved or superseded) is in force from its effective time
    until the next such version of the same set becomes effective.
    """
    from gmp_edge.monitoring.records import APPROVED, SUPERSEDED

    by_id: dict[str, list[tuple[Any, str]]] = {}
    for ls, st in books.limit_sets.history():
        if st in (APPROVED, SUPERSEDED):
            by_id.setdefault(ls.id, []).append((ls, st))
    out: list[tuple[Any, str, int | None]] = []
    for _, versions in sorted(by_id.items()):
        versions.sort(key=lambda v: (v[0].effective_from_us, v[0].version))
        for i, (ls, st) in enumerate(versions):
            until = versions[i + 1][0].effective_from_us if i + 1 < len(versions) else None
            if ls.effective_from_us < end_us and (until is None or until > start_us):
                out.append((ls, st, until))
    return out


def _write_audit(
    conn: sqlite3.Connection, relevant: list[int], write: Callable[[bytes], None]
) -> tuple[int, int, int]:
    """Stream the trail segment [min(relevant), max(relevant)] as JSON; (first, last, n)."""
    first, last = (min(relevant), max(relevant)) if relevant else (0, -1)
    write(
        (
            f'{{"format": "{FORMAT}/audit-segment", "first_seq": {first}, "last_seq": {last},\n'
            f' "relevant_seqs": {json.dumps(relevant)},\n "entries": [\n'
        ).encode()
    )
    cur = conn.execute(
        f"select {', '.join(AUDIT_COLUMNS)} from audit where seq between ? and ? order by seq",
        (first, last),
    )
    n = 0
    while rows := cur.fetchmany(5000):
        parts: list[str] = []
        for r in rows:
            entry = dict(zip(AUDIT_COLUMNS, r, strict=True))
            entry["old"] = json.loads(r[7])
            entry["new"] = json.loads(r[8])
            entry["ts"] = iso(r[1])
            parts.append(
                ("  " if n == 0 and not parts else ",\n  ")
                + json.dumps(entry, sort_keys=True, ensure_ascii=False)
            )
        n += len(rows)
        write("".join(parts).encode())
    write(b"\n ]}\n")
    return first, last, n


# ---------------------------------------------------------------------------- chain heads


def _seal_head(conn: sqlite3.Connection) -> tuple[int, bytes]:
    """(seq, hash) of the newest seal block on this snapshot; (0, GENESIS): none."""
    if not has_table(conn, "seal_blocks"):
        return 0, GENESIS
    row = conn.execute("select seq, hash from seal_blocks order by seq desc limit 1").fetchone()
    return (0, GENESIS) if row is None else (int(row[0]), bytes(row[1]))


@dataclass(frozen=True, slots=True)
class _AnchorLine:
    """The anchor the package carries: parsed, its line verbatim, where it was read."""

    anchor: Anchor
    text: str
    file: str


def _block_hash(conn: sqlite3.Connection, seq: int) -> tuple[int, bytes]:
    row = conn.execute("select hash from seal_blocks where seq=?", (seq,)).fetchone()
    return seq, bytes(row[0]) if row is not None else GENESIS


def _rowid_span(
    conn: sqlite3.Connection, tag_ids: Mapping[int, str], start_us: int, end_us: int
) -> tuple[int, int]:
    """The rowids readings.csv spans ((1, 0): none), from the segments and the unfolded
    tail in the caller's snapshot (``historian.store.record_spans``)."""
    spans = record_spans(conn, sorted(tag_ids), start_us, end_us).values()
    if not spans:
        return 1, 0
    return min(a for _, a, _ in spans), max(b for _, _, b in spans)


def _last_covering_seq(
    conn: sqlite3.Connection, tag_ids: Mapping[int, str], start_us: int, end_us: int
) -> int | None:
    """The newest block that may have sealed a row of readings.csv (None: no such row)."""
    if not has_table(conn, "seal_blocks"):
        return None
    xlo, xhi = _rowid_span(conn, tag_ids, start_us, end_us)
    if xlo > xhi:
        return None
    row = conn.execute(
        "select max(seq) from seal_blocks where readings_lo is not null and kind != 'retention'"
        " and readings_hi >= ? and readings_lo <= ?",
        (xlo, xhi),
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def _newest_anchor(
    store_path: Path, head_seq: int, needed: int | None = None
) -> tuple[_AnchorLine | None, str | None]:
    """The first signed anchor that signs block ``needed`` or later (at or below
    ``head_seq``: anchors taken after the package's snapshot cover blocks it does not hold);
    else the newest at or below ``head_seq``; or None and why."""
    path = anchors_path_for(store_path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None, f"the box has written no anchors yet ({path.name} does not exist)"
    except OSError as exc:
        return None, f"the anchors file {path.name} cannot be read: {exc.strerror}"
    anchors, _ = parse_anchors(text)
    lines = text.splitlines()  # parse_anchors numbers these lines
    signed = [a for a in anchors if not a.legacy and a.seal_seq is not None]
    if needed is not None:
        for a in signed:
            assert a.seal_seq is not None
            if needed <= a.seal_seq <= head_seq:
                return _AnchorLine(a, lines[a.line - 1].strip(), path.name), None
    for a in reversed(signed):
        if a.seal_seq is not None and a.seal_seq <= head_seq:
            return _AnchorLine(a, lines[a.line - 1].strip(), path.name), None
    return None, f"no signed anchor in {path.name} covers a seal block at or below the head"


@dataclass
class _Segment:
    """What ``_write_seal_segment`` wrote, for the manifest."""

    head: tuple[int, str]
    first_seq: int
    prev_sha256: str
    blocks: int = 0
    covering: int = 0
    full: int = 0
    straddling: int = 0
    rows_full: int = 0
    rows_chain: int = 0
    first_covering: int | None = None
    last_covering: int | None = None
    covering_unanchored: int = 0
    # readings the blocks first_covering..last_covering sealed (every readings block there,
    # covering or not): the budget of the store check's scrub over exactly those blocks
    readings_through_last: int = 0


def _write_seal_segment(
    conn: sqlite3.Connection,
    head: tuple[int, bytes],
    tag_ids: Mapping[int, str],
    start_us: int,
    end_us: int,
    anchored_seq: int | None,
    write: Callable[[bytes], None],
) -> _Segment:
    """Stream the seal blocks from the first that sealed a row of readings.csv (or the
    block after the anchored one, if lower) to the head, on the readings' snapshot.

    Each readings block gets the count of its rows in readings.csv (by the same scope and
    window as the export, so in the same rowid order) and ``full`` when those are all the
    rows it sealed, else ``chain``. A block whose readings a later retention block deleted
    is dead (as ``integrity.check`` counts it): its rowids may be reused, so it covers none.
    """
    head_seq, head_hash = head
    seg = _Segment((head_seq, head_hash.hex()), head_seq + 1, head_hash.hex())
    if head_seq == 0:
        return seg
    xlo, xhi = _rowid_span(conn, tag_ids, start_us, end_us)
    dead = Retentions.of(conn).dead

    start = head_seq + 1
    if xlo <= xhi:
        cur = conn.execute(
            "select seq, readings_hi from seal_blocks where readings_lo is not null"
            " and readings_hi >= ? and readings_lo <= ? order by seq",
            (xlo, xhi),
        )
        try:
            for seq, hi in cur:
                if not dead(int(seq), int(hi)):
                    start = int(seq)
                    break
        finally:
            cur.close()
    if anchored_seq is not None:
        start = min(start, anchored_seq + 1)  # the anchored block is the segment's or its prev
    seg.first_seq = start
    if start > 1:
        row = conn.execute("select hash from seal_blocks where seq=?", (start - 1,)).fetchone()
        # a block missing from the store: the verifier finds the chain does not link
        seg.prev_sha256 = GENESIS.hex() if row is None else bytes(row[0]).hex()
    else:
        seg.prev_sha256 = GENESIS.hex()
    cur = conn.execute(
        "select seq, ts_us, kind, readings_lo, readings_hi, readings_n, readings_sha256,"
        " changes, changes_sha256, hash from seal_blocks where seq between ? and ?"
        " order by seq",
        (start, head_seq),
    )
    groups = TagGroups(conn)
    sealed_since_first = 0
    try:
        while rows := cur.fetchmany(2000):
            out: list[str] = []
            for seq, ts, kind, lo, hi, n, rsha, changes, csha, digest in rows:
                csv_rows = proof = None
                runs: list[list[int]] | None = None
                others: dict[str, list[Any]] | None = None
                if seg.first_covering is not None and lo is not None:
                    sealed_since_first += int(n)
                if lo is not None and hi >= xlo and lo <= xhi and not dead(int(seq), int(hi)):
                    share = _block_share(conn, int(lo), int(hi), tag_ids, start_us, end_us, groups)
                    if share is not None:
                        csv_rows, runs, others, full = share
                        proof = "full" if full and rsha is not None else "chain"
                        seg.covering += 1
                        if seg.first_covering is None:
                            seg.first_covering = int(seq)
                            sealed_since_first = int(n)
                        seg.last_covering = int(seq)
                        seg.readings_through_last = sealed_since_first
                        if anchored_seq is None or seq > anchored_seq:
                            seg.covering_unanchored += 1
                        if proof == "full":
                            seg.full += 1
                            seg.rows_full += csv_rows
                        else:
                            seg.straddling += 1
                            seg.rows_chain += csv_rows
                line = [
                    seq,
                    ts,
                    kind,
                    lo,
                    hi,
                    n,
                    None if rsha is None else bytes(rsha).hex(),
                    changes,
                    bytes(csha).hex(),
                    bytes(digest).hex(),
                    csv_rows,
                    proof,
                    runs,
                    others,
                ]
                out.append(json.dumps(line, separators=(",", ":")) + "\n")
            seg.blocks += len(rows)
            write("".join(out).encode())
    finally:
        cur.close()
    return seg


def _block_share(
    conn: sqlite3.Connection,
    lo: int,
    hi: int,
    tag_ids: Mapping[int, str],
    start_us: int,
    end_us: int,
    groups: TagGroups,
) -> tuple[int, list[list[int]], dict[str, list[Any]], bool] | None:
    """What of block ``lo..hi`` readings.csv holds: (rows, their rowids as [first, count]
    runs, the digests of the equipment groups not wholly in readings.csv, whether every one
    of its rows is in a group wholly there), or None when it holds none of them.

    The verifier recomputes the digest of every group wholly in readings.csv from its rows
    and combines it with the others' digests given here (``integrity.digest``): so a block
    that also sealed other rooms' readings is proven by the batch's rows all the same."""
    hashers: dict[str, RowsHasher] = {}
    total: dict[str, int] = {}
    inside: dict[str, int] = {}
    runs: list[list[int]] = []
    for row in conn.execute(
        covered.select_rows(covered.READINGS) + " where rowid between ? and ? order by rowid",
        (lo, hi),
    ):
        rid, tag = int(row[0]), int(row[1])
        g = groups(tag)
        h = hashers.get(g)
        if h is None:
            h = hashers[g] = RowsHasher()
        h.add(row)
        total[g] = total.get(g, 0) + 1
        if tag in tag_ids and start_us <= int(row[2]) < end_us:
            inside[g] = inside.get(g, 0) + 1
            if runs and runs[-1][0] + runs[-1][1] == rid:
                runs[-1][1] += 1
            else:
                runs.append([rid, 1])
    rows = sum(inside.values())
    if not rows:
        return None
    wholly = {g for g, k in inside.items() if k == total[g]}
    others = {g: [h.n, h.digest().hex()] for g, h in hashers.items() if g not in wholly}
    return rows, runs, others, len(wholly) == len(inside)


def _seal_manifest(
    seg: _Segment,
    anchor: _AnchorLine | None,
    no_anchor: str | None,
    tag_ids: Mapping[int, str],
    exported: int,
) -> dict[str, Any]:
    """The manifest's ``seal`` part: the heads, the anchor, and in sentences what is proven."""
    head_seq, head_sha = seg.head
    anchored = None if anchor is None else anchor.anchor.seal_seq
    unanchored = head_seq - (anchored or 0)
    in_no_block = exported - seg.rows_full - seg.rows_chain
    proof = [
        f"seal_chain.jsonl holds seal blocks {seg.first_seq}..{head_seq} ({seg.blocks}), each"
        " with all the content its hash covers: the chain is recomputed from block"
        f" {seg.first_seq - 1}'s hash up to block {head_seq}: the ledger head at export, or"
        " the block of the first anchor that signs every block of the batch (what was sealed"
        " after it adds nothing to this proof)."
    ]
    if anchor is not None:
        a = anchor.anchor
        proof.append(
            f"The newest signed anchor at or below the head is the {a.kind} anchor of"
            f" {iso(a.at_us)}, line {a.line} of {anchor.file} (carried verbatim), signed with"
            f" the box key: it signs block {anchored}. The {unanchored} blocks after it were"
            " not anchored yet at export: they are proven by this package's signature alone."
        )
    else:
        proof.append(
            f"No signed anchor covers the chain ({no_anchor}): the blocks are proven by this"
            " package's signature alone."
        )
    proof.append(
        f"{seg.covering} blocks sealed the {exported} rows of readings.csv. {seg.full} are"
        f" fully proven ({seg.rows_full} rows): every reading they sealed of the batch's"
        " equipment is in readings.csv and the other equipment's group digests are given, so"
        " their readings digest is recomputed from it."
    )
    if seg.straddling:
        proof.append(
            f"{seg.straddling} straddle the batch window ({seg.rows_chain} rows): they also"
            " sealed readings of the batch's own equipment outside the window, not in this"
            " package, so their digest cannot be recomputed here; their rows are proven only"
            " by the chain (the block exists, is chained to the head and sealed that many"
            " readings)."
        )
    if in_no_block:
        proof.append(
            f"{in_no_block} rows of readings.csv are in no sealed block: written outside gmp-edge."
        )
    return {
        "file": SEAL_FILE,
        "columns": list(SEAL_COLUMNS),
        "row_encoding": (
            "readings_sha256 = SHA-256 over b'gmp-edge readings by equipment 1\\n' then, for"
            " each equipment group (tag path without its signal) sorted by name,"
            " 'group<TAB>rows<TAB>group digest hex<LF>'; a group digest = SHA-256 over"
            " repr((rowid, "
            + ", ".join(covered.READINGS_COLUMNS)
            + ")) + newline for each of its readings in the block, in rowid order;"
            " tag_id from tag_ids, quality 0 good 1 uncertain 2 bad, an empty unquoted field"
            " NULL"
        ),
        "tag_ids": {path: tid for tid, path in sorted(tag_ids.items(), key=lambda kv: kv[1])},
        "head": {"seq": head_seq, "sha256": head_sha},
        "segment": {
            "first_seq": seg.first_seq,
            "last_seq": head_seq,
            "blocks": seg.blocks,
            "prev_sha256": seg.prev_sha256,
        },
        "anchor": None
        if anchor is None
        else {"file": anchor.file, "file_line": anchor.anchor.line, "line": anchor.text},
        "anchored_seq": anchored,
        "unanchored_blocks": unanchored,
        "no_anchor": no_anchor,
        "readings": {
            "covering_blocks": seg.covering,
            "fully_proven_blocks": seg.full,
            "straddling_blocks": seg.straddling,
            "rows_fully_proven": seg.rows_full,
            "rows_proven_by_chain_only": seg.rows_chain,
            "rows_in_no_block": in_no_block,
            "first_covering_seq": seg.first_covering,
            "last_covering_seq": seg.last_covering,
            "covering_blocks_unanchored": seg.covering_unanchored,
        },
        "proof": proof,
    }


def _check_scope(seg: _Segment) -> str:
    """What the store check at export covered, in one sentence."""
    blocks = (
        "no block (readings.csv is empty)"
        if seg.first_covering is None
        else f"seal blocks {seg.first_covering}..{seg.last_covering} (those that sealed"
        " readings.csv, straddling ones included)"
    )
    return (
        "the audit trail, the whole seal chain, every other record table"
        f" and the anchors; the readings of {blocks} and any after the newest block"
        " (SQLite's own read of the whole file is the periodic check's, not the export's)"
    )


# --------------------------------------------------------------------------------- build


def build_package(
    out_path: str | Path,
    *,
    store: Store,
    trail: AuditTrail,
    books: Books,
    signatures: SignatureRegister,
    cfg: PlantConfig,
    config_path: str | Path,
    batch_id: str,
    review: Mapping[str, Any] | None,
    key_path: str | Path,
    now_us: int,
    readings_level: int | None = 1,
    check_store: StoreChecker | None = None,
) -> PackageInfo:
    """Write the evidence package of ``batch_id`` to ``out_path`` (atomically) and sign it.

    The window is the batch's ``[start_us, end_us)``; a batch still in progress is taken
    up to ``now_us`` and the manifest says so. ``readings_level`` is readings.csv's
    deflate level (None: stored; ADR 0016 weighs size against speed). ``check_store``
    (``services.integrity.verify_store``) is run on the store after the readings are read,
    recomputing the readings of the blocks that sealed readings.csv (the rest of the check
    is whole), and its verdict goes into the manifest (None: the manifest says it was not
    run). Raises
    EvidenceError (nothing written) for an unknown batch or an unreadable configuration
    file. The caller audits the export.
    """
    t0 = time.perf_counter()
    out_path = Path(out_path)
    batch = books.batches.get(batch_id)
    if batch is None:
        raise EvidenceError(f"no batch {batch_id!r}")
    config_path = Path(config_path)
    try:
        config_raw = config_path.read_bytes()
    except OSError as exc:
        raise EvidenceError(f"{config_path}: cannot read the configuration: {exc}") from None
    key = keys.load_or_create(key_path)
    fp = keys.fingerprint(key)
    start_us = batch.start_us
    end_us = batch.end_us if batch.end_us is not None else now_us
    rooms, equipment = set(batch.rooms), set(batch.equipment)

    tmp = out_path.with_name(out_path.name + ".partial")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    sconns = snapshot(store.path, _WORKERS)  # one snapshot of the readings
    sconn = sconns[0]
    aconn = readonly(trail.path)
    try:
        tag_ids = {
            int(tid): str(path)
            for tid, path in sconn.execute("select id, path from tags")
            if in_batch_scope(str(path), rooms, equipment)
        }
        scope = sorted(tag_ids.values())
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
            w = _ZipWriter(zf)
            with w.stream("readings.csv", level=readings_level) as write:
                try:
                    per_tag = write_readings(sconns, tag_ids, start_us, end_us, write)
                except ExportError as exc:
                    raise EvidenceError(str(exc)) from exc
            # the chain heads on the same snapshot as the readings, before it is let go
            store_head = _seal_head(sconn)
            needed = _last_covering_seq(sconn, tag_ids, start_us, end_us)
            anchor, no_anchor = _newest_anchor(store.path, store_head[0], needed)
            # the chain ends at the first anchor that signs every block of the batch: what
            # was sealed after it adds nothing to the proof (and a month of blocks to carry)
            seal_head = store_head
            signs = None if anchor is None else anchor.anchor.seal_seq
            if needed is not None and signs is not None and needed <= signs < store_head[0]:
                seal_head = _block_hash(sconn, signs)
            with w.stream(SEAL_FILE) as write:
                segment = _write_seal_segment(
                    sconn,
                    seal_head,
                    tag_ids,
                    start_us,
                    end_us,
                    None if anchor is None else anchor.anchor.seal_seq,
                    write,
                )
            for c in sconns:
                c.execute("commit")

            gaps = sorted(
                (g for tag in scope for g in store.gaps(tag, start_us, end_us, limit=_ALL)),
                key=lambda g: (g.start_us, g.id),
            )
            buf = io.StringIO()
            cw = csv.writer(buf, lineterminator="\n")
            cw.writerow(GAPS_COLUMNS)
            for g in gaps:
                # a gap's message can carry a device's or a peer's text: inert for
                # spreadsheets; the verifier only counts these rows, the manifest hashes them
                cw.writerow(
                    neutralise_row(
                        [
                            g.id,
                            g.tag,
                            g.start_us,
                            iso(g.start_us),
                            "" if g.end_us is None else g.end_us,
                            "" if g.end_us is None else iso(g.end_us),
                            g.cause,
                            g.message,
                        ]
                    )
                )
            w.add("gaps.csv", buf.getvalue().encode())

            transitions = sorted(
                (
                    t
                    for tag in scope
                    for t in books.alarms.history(tag, start_us, end_us, limit=_ALL)
                ),
                key=lambda t: (t.at_us, t.tag),
            )
            w.add("alarm_transitions.json", _json([t.to_dict() for t in transitions]))

            deviations = sorted(books.deviations.about_batch(batch, now_us), key=lambda d: d.id)
            w.add(
                "excursions/deviations.json",
                _json(
                    [
                        {
                            "deviation": d.to_dict(),
                            "signatures": _signature_manifest(
                                signatures, "deviation", d.id, d.to_dict()
                            ),
                        }
                        for d in deviations
                    ]
                ),
            )

            from gmp_edge.monitoring.records import limit_set_record_id

            versions = _limit_versions(books, start_us, end_us)
            limit_ids = [limit_set_record_id(ls.id, ls.version) for ls, _, _ in versions]
            w.add(
                "limit_sets.json",
                _json(
                    [
                        {
                            "record_id": rid,
                            "status": st,
                            "in_force_from_us": ls.effective_from_us,
                            "in_force_until_us": until,
                            "limit_set": ls.to_dict(),
                            "signatures": _signature_manifest(
                                signatures, "limit_set", rid, ls.content()
                            ),
                        }
                        for (ls, st, until), rid in zip(versions, limit_ids, strict=True)
                    ]
                ),
            )

            runs = [
                {
                    "id": i,
                    "started_us": a,
                    "started": iso(a),
                    "stopped_us": b,
                    "stopped": iso(b),
                    "config_sha256": sha,
                    "note": note,
                }
                for i, a, b, sha, note in store.service_runs()
                if a < end_us and (b is None or b > start_us)
            ]
            w.add("service_runs.json", _json(runs))

            relevant: set[int] = set()
            records = [("batch", batch_id), (BATCH_DECISION, batch_id)]
            records += [("deviation", d.id) for d in deviations]
            records += [("limit_set", rid) for rid in limit_ids]
            for rtype, rid in records:
                relevant.update(e.seq for e in trail.entries(rtype, rid, limit=_ALL))
            for alarm_id in sorted({t.alarm_id for t in transitions}):
                relevant.update(
                    e.seq for e in trail.entries("alarm", alarm_id, start_us=start_us, limit=_ALL)
                )
            head = trail.head()
            checked, _, brk = trail.verify()
            with w.stream("audit.json") as write:
                first, last, n_audit = _write_audit(aconn, sorted(relevant), write)

            decision = _signature_manifest(signatures, BATCH_DECISION, batch_id, None)
            w.add("signatures.json", _json(decision))
            if review is not None:
                w.add("review.json", _json(dict(review)))
            config_sha = hashlib.sha256(config_raw).hexdigest()
            config_member = f"config/{config_path.name}"
            w.add(config_member, config_raw)
            w.add("config.sha256", f"{config_sha}  {config_member}\n".encode())
            w.add("public_key.pem", keys.public_pem(key))
            # after the snapshot: the check's head is at or beyond the package's. It
            # recomputes the readings of the blocks that sealed readings.csv (the straddling
            # ones too, which the package cannot prove), not a year of others (ADR 0027)
            verdict, check_scope = None, None
            if check_store is not None:
                scrub_from = segment.first_covering or seal_head[0] + 1
                budget = max(1, segment.readings_through_last)
                verdict = check_store(store.path, scrub=Scrub(None, scrub_from, budget))
                check_scope = _check_scope(segment)

            manifest = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "generator": _generator(),
                "batch_id": batch_id,
                "batch": batch.to_dict(),
                "created_at_us": now_us,
                "created_at": iso(now_us),
                "edge_box": {
                    "site": cfg.site.id,
                    "host": socket.gethostname(),
                    "key_fingerprint": fp,
                    "public_key": "public_key.pem",
                },
                "window": {
                    "start_us": start_us,
                    "end_us": end_us,
                    "start": iso(start_us),
                    "end": iso(end_us),
                    "batch_in_progress": batch.end_us is None,
                },
                "scope": {"rooms": sorted(rooms), "equipment": sorted(equipment), "tags": scope},
                "readings": {
                    "file": "readings.csv",
                    "rows": sum(per_tag.values()),
                    "per_tag": per_tag,
                    "order": "commit order (store rowid)",
                },
                "counts": {
                    "gaps": len(gaps),
                    "alarm_transitions": len(transitions),
                    "deviations": len(deviations),
                    "limit_set_versions": len(versions),
                    "batch_decision_signatures": len(decision["signatures"]),
                },
                "audit": {
                    "file": "audit.json",
                    "head_seq": head[0],
                    "head_hash": head[1],
                    "segment_first_seq": first,
                    "segment_last_seq": last,
                    "segment_entries": n_audit,
                    "relevant_entries": len(relevant),
                    "chain_check_at_export": {
                        "entries": checked,
                        "intact": brk is None,
                        "problem": None if brk is None else f"seq {brk.seq}: {brk.reason}",
                    },
                },
                "config": {
                    "file": config_member,
                    "sha256": config_sha,
                    # every service run during the window ran with this very file
                    "same_as_service_runs_in_window": bool(runs)
                    and all(r["config_sha256"] == config_sha for r in runs),
                },
                "seal": _seal_manifest(segment, anchor, no_anchor, tag_ids, sum(per_tag.values())),
                "store_check_at_export": None
                if verdict is None
                else {
                    "verified": verdict.verified,
                    "problems": verdict.problems(),
                    "summary": verdict.summary(),
                    "scope": check_scope,
                },
                "review_included": review is not None,
                "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in w.files],
            }
            manifest_bytes = _json(manifest)
            w.add("manifest.json", manifest_bytes, listed=False)
            w.add("manifest.sig", key.sign(manifest_bytes), listed=False)
        os.replace(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        for c in sconns:
            c.close()
        aconn.close()
    data_hash = hashlib.sha256()
    with out_path.open("rb") as f:
        while chunk := f.read(1 << 20):
            data_hash.update(chunk)
    return PackageInfo(
        path=out_path,
        size=out_path.stat().st_size,
        sha256=data_hash.hexdigest(),
        batch_id=batch_id,
        created_at_us=now_us,
        key_fingerprint=fp,
        readings=sum(per_tag.values()),
        readings_per_tag=per_tag,
        audit_head=head,
        files=list(w.files),
        seconds=time.perf_counter() - t0,
        seal_head=segment.head,
        store_verified=None if verdict is None else verdict.verified,
    )


def _generator() -> str:
    try:
        from importlib.metadata import version

        return f"gmp-edge {version('gmp-edge')}"
    except Exception:  # not installed as a distribution (running from a checkout)
        return "gmp-edge"
