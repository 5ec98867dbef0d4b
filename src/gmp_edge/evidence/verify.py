"""Verify an evidence package offline: only the ZIP, Python and ``cryptography``.

This module imports nothing from gmp-edge (it can be copied alone to an inspector's
laptop and run as ``python verify.py verify FILE``); the audit hash chain is recomputed
with a copy of ``gmp_edge.audit.chain``'s canonical form, which a unit test keeps identical.

Checks, each reported by file name when it fails:

* ``manifest.sig`` is a valid Ed25519 signature over the exact ``manifest.json`` bytes
  under ``public_key.pem``, whose fingerprint is the expected one when given;
* every file's size and SHA-256 equal the manifest's; no file missing, none extra;
* the ``audit.json`` segment's hash chain is intact, entry by entry;
* ``readings.csv`` parses, its timestamps are consistent and inside the window, and the
  row count per tag equals the manifest's;
* the configuration file hashes to ``config.sha256`` and to the manifest's value;
* the JSON files parse and their record counts equal the manifest's;
* (format 2) the chain heads: ``seal_chain.jsonl``'s blocks, each hash recomputed from its
  content and the block before, link up to the ledger head the manifest states; the anchor
  carried verbatim is signed by the package's key (Ed25519, checked here) and signs a block
  of that chain, the blocks after it being counted as unanchored; the readings digest of
  every block whose readings are all in ``readings.csv`` is recomputed from its rows
  (a changed value names the block); blocks that also sealed readings not in the package
  are reported as proven by the chain alone; the store check at export passed.

The report says in plain lines what was proven (``ok``) and what the package cannot prove
(``not proven``).
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import json
import re
import sys
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

FORMAT = "gmp-edge-evidence"
SUPPORTED_VERSIONS = (1, 2)  # 1: before the chain heads (nothing of them to check)
GENESIS = "0" * 64
UNSIGNED = ("manifest.json", "manifest.sig")  # the two files the manifest cannot list
# the readings.csv header, which gmp_edge.evidence.readings_csv writes (it imports this)
READINGS_COLUMNS = [
    "tag", "ts_us", "ts", "ts_edge_us", "ts_edge", "ts_source_us", "ts_source",
    "quality", "value", "text", "message", "cause",
]  # fmt: skip
QUALITY_NAMES = frozenset(("good", "uncertain", "bad"))
# the stored quality codes (gmp_edge.evidence.readings_csv.QUALITY_NAMES, in that order)
QUALITY_CODES = {"good": 0, "uncertain": 1, "bad": 2}
MAX_ROW_PROBLEMS = 10
# one line of seal_chain.jsonl: the content a block's hash covers (the first nine, as
# gmp_edge.integrity.digest.block_hash takes them), its hash, then what the package adds
SEAL_COLUMNS = (
    "seq", "ts_us", "kind", "readings_lo", "readings_hi", "readings_n", "readings_sha256",
    "changes", "changes_sha256", "hash", "csv_rows", "proof", "csv_rowids", "other_groups",
)  # fmt: skip
# the stored columns of a reading after its rowid, as a seal hashes them
# (gmp_edge.integrity.covered.READINGS_COLUMNS; a unit test keeps them identical)
SEALED_READING_COLUMNS = (
    "tag_id", "ts_us", "ts_edge_us", "ts_source_us", "value", "text", "quality", "message",
    "cause",
)  # fmt: skip


@dataclass
class VerifyReport:
    """The outcome: ``ok`` only if there is no problem at all."""

    ok: bool
    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    batch_id: str | None = None
    fingerprint: str | None = None  # of the public key in the package
    unproven: list[str] = field(default_factory=list)  # what the package cannot prove

    def text(self) -> str:
        """Human-readable report."""
        lines = [
            f"evidence package of batch {self.batch_id or '?'}: "
            + ("VERIFIED" if self.ok else f"NOT VERIFIED ({len(self.problems)} problem(s))"),
            f"signing key fingerprint: {self.fingerprint or '?'}",
        ]
        lines += [f"  PROBLEM: {p}" for p in self.problems]
        lines += [f"  ok: {c}" for c in self.checked]
        lines += [f"  not proven: {u}" for u in self.unproven]
        return "\n".join(lines)


# the fields an audit entry's hash covers (as ``audit.chain.canonical`` hashes them)
AUDIT_HASHED = (
    "seq", "ts_us", "actor", "action", "record_type", "record_id", "reason", "old", "new",
)  # fmt: skip


def canonical(entry: dict[str, Any]) -> bytes:
    """The bytes an audit entry's hash covers (identical to ``audit.chain.canonical``)."""
    body = {k: entry[k] for k in AUDIT_HASHED}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(prev_hash: str, body: bytes) -> str:
    """SHA-256 (hex) chaining ``body`` to the previous hash (as ``audit.chain.entry_hash``)."""
    return hashlib.sha256(prev_hash.encode("ascii") + body).hexdigest()


def seal_block_hash(prev_hex: str, content: list[Any]) -> str:
    """SHA-256 (hex) of a seal block: its predecessor's hash and its content, the first
    nine of SEAL_COLUMNS (as ``integrity.digest.block_hash``; raises ValueError for a
    ``prev_hex`` that is not hex)."""
    body = json.dumps(content, separators=(",", ":")).encode()
    return hashlib.sha256(bytes.fromhex(prev_hex) + body).hexdigest()


def sealed_reading(
    rowid: int, fields: list[str], quoted: list[bool] | None, tag_ids: dict[str, int]
) -> tuple[Any, ...] | None:
    """The stored row ``(rowid, *SEALED_READING_COLUMNS)`` a readings.csv record was written
    from, as a seal hashes it (None: the record cannot be one). ``quoted`` tells an empty
    text, message or cause (``""``) from NULL (an empty unquoted field)."""
    try:
        tag_id = tag_ids[fields[0]]
        ts, edge = int(fields[1]), int(fields[3])
        src = int(fields[5]) if fields[5] else None
        quality = QUALITY_CODES[fields[7]]
        value = float(fields[8]) if fields[8] else None
    except (KeyError, ValueError, IndexError):
        return None
    # only the box's own spelling: "2_1.0" or "+21" hash as 21.0 but read otherwise elsewhere
    if (
        str(ts) != fields[1]
        or str(edge) != fields[3]
        or (src is not None and str(src) != fields[5])
        or (value is not None and repr(value) != fields[8])
    ):
        return None
    flags = quoted[9:12] if quoted is not None else (False, False, False)
    text, message, cause = (f if f or q else None for f, q in zip(fields[9:12], flags, strict=True))
    return (rowid, tag_id, ts, edge, src, value, text, quality, message, cause)


_CANONICAL_INT = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")


def _sealed_repr(
    rowid: int, fields: list[str], quoted: list[bool] | None, tag_ids: dict[str, int]
) -> str | None:
    """``repr(sealed_reading(...))``, spelt out directly for the common record (a number,
    no text, message or cause: nothing quoted), several times faster; the other records
    go through ``sealed_reading``."""
    if quoted is None and len(fields) == 12 and not (fields[9] or fields[10] or fields[11]):
        tag, ts, _, edge, _, src, _, q, v = fields[:9]
        tag_id, code = tag_ids.get(tag), QUALITY_CODES.get(q)
        if (
            tag_id is None
            or code is None
            or not _CANONICAL_INT.match(ts)
            or not _CANONICAL_INT.match(edge)
            or (src and not _CANONICAL_INT.match(src))
        ):
            return None
        if v:
            try:
                if repr(float(v)) != v:
                    return None
            except ValueError:
                return None
        return (
            f"({rowid}, {tag_id}, {ts}, {edge}, {src or None}, {v or None}, None, {code},"
            " None, None)"
        )
    row = sealed_reading(rowid, fields, quoted, tag_ids)
    return None if row is None else repr(row)


def _split_quoted(s: str) -> tuple[list[str], list[bool]] | None:
    """The fields of one record holding a quote, and which were quoted (None: malformed)."""
    fields: list[str] = []
    quoted: list[bool] = []
    i, n = 0, len(s)
    while True:
        if i < n and s[i] == '"':
            parts: list[str] = []
            j = i + 1
            while True:
                k = s.find('"', j)
                if k < 0:
                    return None
                parts.append(s[j:k])
                if s.startswith('"', k + 1):  # "" inside quotes: one quote
                    parts.append('"')
                    j = k + 2
                else:
                    i = k + 1
                    break
            fields.append("".join(parts))
            quoted.append(True)
            if i < n and s[i] != ",":
                return None
        else:
            k = s.find(",", i)
            k = n if k < 0 else k
            if '"' in s[i:k]:  # never written: a quote makes the writer quote the field
                return None
            fields.append(s[i:k])
            quoted.append(False)
            i = k
        if i >= n:
            return fields, quoted
        i += 1  # the comma


def csv_records(lines: Iterable[str]) -> Iterator[tuple[list[str] | None, list[bool] | None]]:
    """The records of a CSV text read with ``newline=""``, as the package writes them:
    (fields, which were quoted, None when none was); fields None: malformed quoting.

    The same fields as ``csv.reader`` gives, but an empty quoted field (an empty text)
    is told from an empty unquoted one (NULL), which a seal's digest tells apart. Raises
    ValueError when the text ends inside a quoted field.
    """
    pending: list[str] = []
    odd = False  # inside a quoted field at the end of the lines so far
    for line in lines:
        if line.count('"') % 2:
            odd = not odd
        if odd:
            pending.append(line)
            continue
        if pending:
            pending.append(line)
            line = "".join(pending)
            pending = []
        if line.endswith("\r\n"):
            line = line[:-2]
        elif line.endswith(("\n", "\r")):
            line = line[:-1]
        if '"' not in line:
            yield line.split(","), None
            continue
        parsed = _split_quoted(line)
        yield (None, None) if parsed is None else parsed
    if pending:
        raise ValueError("the file ends inside a quoted field")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso(us: int) -> str:
    """``2026-03-01T10:00:00.123456Z``, as ``gmp_edge.timefmt.iso`` writes the package."""
    minute, rest = divmod(us, 60_000_000)
    d = _EPOCH + timedelta(minutes=minute)
    s, f = divmod(rest, 1_000_000)
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{s:02d}.{f:06d}Z"


# what reading a damaged or doctored member can raise (flag bits can claim encryption or
# an unsupported compression: RuntimeError, NotImplementedError)
_DAMAGE = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    RuntimeError,
    NotImplementedError,
)


class _Check:
    """Collects problems and passed checks while walking one package."""

    def __init__(self, zf: zipfile.ZipFile):
        self.zf = zf
        self.problems: list[str] = []
        self.checked: list[str] = []
        self.unproven: list[str] = []
        self.names = [i.filename for i in zf.infolist()]
        self.public: Any = None  # the package's Ed25519 public key, once read

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def read(self, name: str) -> bytes | None:
        if name not in self.names:
            self.problem(f"{name}: missing from the package")
            return None
        try:
            return self.zf.read(name)
        except _DAMAGE as exc:
            self.problem(
                f"{name}: cannot be read from the ZIP, the stored bytes are damaged ({exc})"
            )
            return None

    def digest(self, name: str) -> tuple[int, str] | None:
        h = hashlib.sha256()
        size = 0
        try:
            with self.zf.open(name) as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
                    size += len(chunk)
        except _DAMAGE as exc:
            self.problem(
                f"{name}: cannot be read from the ZIP, the stored bytes are damaged ({exc})"
            )
            return None
        return size, h.hexdigest()

    def json(self, name: str) -> Any:
        data = self.read(name)
        if data is None:
            return None
        try:
            return json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self.problem(f"{name}: not valid JSON ({exc})")
            return None


def _signature(c: _Check, expected_fingerprint: str | None) -> tuple[bytes | None, str | None]:
    """Check manifest.sig; returns (manifest bytes, key fingerprint)."""
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:  # pragma: no cover - environment problem
        c.problem("manifest.sig: cannot be checked, the Python package 'cryptography' is missing")
        return c.read("manifest.json"), None
    manifest = c.read("manifest.json")
    sig = c.read("manifest.sig")
    pem = c.read("public_key.pem")
    if pem is None:
        return manifest, None
    try:
        pub = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        c.problem(f"public_key.pem: not a readable public key ({exc})")
        return manifest, None
    if not isinstance(pub, Ed25519PublicKey):
        c.problem(f"public_key.pem: not an Ed25519 key ({type(pub).__name__})")
        return manifest, None
    c.public = pub
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    fp = hashlib.sha256(raw).hexdigest()
    if expected_fingerprint is not None:
        want = expected_fingerprint.strip().lower().replace(":", "")
        if fp != want:
            c.problem(
                f"public_key.pem: key fingerprint {fp} is not the expected {want}: the package "
                "was not signed by that edge box (or its key was replaced)"
            )
        else:
            c.checked.append(f"public_key.pem: fingerprint {fp} is the expected one")
    if manifest is None or sig is None:
        return manifest, fp
    try:
        pub.verify(sig, manifest)
    except InvalidSignature:
        c.problem(
            "manifest.sig: the signature does not match manifest.json under public_key.pem: "
            "manifest.json or manifest.sig was changed after signing"
        )
    else:
        c.checked.append("manifest.sig: valid Ed25519 signature over manifest.json")
        if expected_fingerprint is None:
            c.checked.append(
                "public_key.pem: no expected fingerprint given; compare "
                f"{fp} with the one recorded for the edge box"
            )
    return manifest, fp


def _files(c: _Check, manifest: dict[str, Any]) -> None:
    listed = manifest.get("files")
    if not isinstance(listed, list):
        c.problem("manifest.json: has no list of files")
        return
    seen: set[str] = set()
    good = 0
    for f in listed:
        path, size, sha = f.get("path"), f.get("size"), f.get("sha256")
        seen.add(path)
        if path not in c.names:
            c.problem(f"{path}: listed in manifest.json but missing from the package")
            continue
        got = c.digest(path)
        if got is None:
            continue
        if got[0] != size:
            c.problem(f"{path}: size {got[0]} bytes differs from manifest.json's {size}: changed")
        elif got[1] != sha:
            c.problem(f"{path}: SHA-256 differs from manifest.json's: the file was changed")
        else:
            good += 1
    for name in c.names:
        if name not in seen and name not in UNSIGNED:
            c.problem(f"{name}: in the package but not listed in manifest.json (added)")
    dupes = sorted({n for n in c.names if c.names.count(n) > 1})
    for name in dupes:
        c.problem(f"{name}: present more than once in the ZIP")
    if good == len(listed):
        c.checked.append(f"all {good} listed files: size and SHA-256 match manifest.json")


def _audit(c: _Check, manifest: dict[str, Any]) -> None:
    info = manifest.get("audit", {})
    doc = c.json(info.get("file", "audit.json"))
    if not isinstance(doc, dict):
        return
    entries = doc.get("entries", [])
    first, last = doc.get("first_seq"), doc.get("last_seq")
    expected = first
    prev: str | None = None
    broken = False
    for e in entries:
        try:
            seq = e["seq"]
            if seq != expected:
                what = "missing" if seq > expected else "out of order or duplicated"
                c.problem(f"audit.json: entry {expected} {what} (found {seq}): chain broken")
                broken = True
                break
            if prev is None and seq == 1 and e["prev_hash"] != GENESIS:
                c.problem("audit.json: entry 1 does not start from the genesis hash")
                broken = True
                break
            if prev is not None and e["prev_hash"] != prev:
                c.problem(
                    f"audit.json: entry {seq}: previous-hash link does not match entry "
                    f"{seq - 1}: chain broken"
                )
                broken = True
                break
            body = canonical(e)
            if entry_hash(e["prev_hash"], body) != e["hash"]:
                c.problem(
                    f"audit.json: entry {seq}: content does not match its hash "
                    "(the entry was altered)"
                )
                broken = True
                break
        except (KeyError, TypeError, AttributeError) as exc:
            c.problem(
                f"audit.json: entry after {expected - 1 if expected else '?'} is malformed "
                f"({exc!r})"
            )
            broken = True
            break
        prev = e["hash"]
        expected += 1
    if broken:
        return
    n = len(entries)
    if entries and entries[-1]["seq"] != last:
        c.problem(f"audit.json: last entry is {entries[-1]['seq']}, the segment says {last}")
        return
    if (
        info.get("segment_first_seq"),
        info.get("segment_last_seq"),
        info.get("segment_entries"),
    ) != (first, last, n):
        c.problem(
            f"audit.json: segment {first}..{last} ({n} entries) is not the one manifest.json "
            f"states ({info.get('segment_first_seq')}..{info.get('segment_last_seq')})"
        )
        return
    outside = [s for s in doc.get("relevant_seqs", []) if n == 0 or not first <= s <= last]
    if outside:
        c.problem(f"audit.json: relevant entries {outside[:5]} are outside the segment")
        return
    if n and info.get("head_seq") == last and info.get("head_hash") != prev:
        c.problem("audit.json: the last entry's hash is not the trail head manifest.json states")
        return
    c.checked.append(f"audit.json: hash chain of entries {first}..{last} ({n}) intact")


SEAL_FILE = "seal_chain.jsonl"
_SHOWN_SEQS = 10  # block numbers listed in one line; seal_chain.jsonl has them all


@dataclass(frozen=True, slots=True)
class _Covering:
    """A block that sealed rows of readings.csv, as seal_chain.jsonl lists it: the rowids
    of those rows (``runs`` of [first, count]) and the digests of the equipment groups the
    package does not hold whole (``others``: group -> (rows, SHA-256 hex))."""

    seq: int
    ts_us: int
    lo: int
    hi: int
    n: int
    sha256: str | None
    rows: int  # of its readings, those in readings.csv
    full: bool  # every one of them is in a group wholly here: the digest is recomputable
    runs: tuple[tuple[int, int], ...] = ()
    others: tuple[tuple[str, int, str], ...] = ()

    def rowids(self) -> Iterator[int]:
        """The rowids of its rows in readings.csv, in order."""
        for first, count in self.runs:
            yield from range(first, first + count)


def _is_group_digests(v: Any) -> bool:
    return isinstance(v, dict) and all(
        isinstance(k, str)
        and isinstance(d, list)
        and len(d) == 2
        and type(d[0]) is int
        and isinstance(d[1], str)
        and len(d[1]) == 64
        for k, d in v.items()
    )


def _is_block(b: Any) -> bool:
    """A seal_chain.jsonl line of the right shape (types as the box writes them)."""
    if not isinstance(b, list) or len(b) != len(SEAL_COLUMNS):
        return False
    seq, ts, kind, lo, hi, n, rsha, changes, csha, digest, rows, proof, runs, others = b
    return (
        all(type(v) is int for v in (seq, ts, n, changes))
        and all(v is None or type(v) is int for v in (lo, hi, rows))
        and all(isinstance(v, str) for v in (kind, csha, digest))
        and (rsha is None or isinstance(rsha, str))
        and proof in (None, "full", "chain")
        and (rows is None) == (proof is None) == (runs is None) == (others is None)
        and (rows is None or (lo is not None and hi is not None))
        and (
            runs is None
            or (
                isinstance(runs, list)
                and all(
                    isinstance(r, list) and len(r) == 2 and all(type(x) is int for x in r)
                    for r in runs
                )
                and sum(r[1] for r in runs) == rows
            )
        )
        and (others is None or _is_group_digests(others))
    )


def _covering(b: list[Any]) -> _Covering:
    runs = tuple((int(r[0]), int(r[1])) for r in b[12])
    others = tuple((str(k), int(d[0]), str(d[1])) for k, d in sorted(b[13].items()))
    return _Covering(
        b[0], b[1], b[3], b[4], b[5], b[6], b[10], b[11] == "full" and b[6] is not None,
        runs, others,
    )  # fmt: skip


def group_of(path: str) -> str:
    """A reading's equipment group: its tag path without the signal
    (``gmp_edge.integrity.digest.equipment_of``)."""
    return path.rsplit("/", 1)[0]


def combine_groups(groups: dict[str, tuple[int, str]]) -> str:
    """A block's readings digest from its groups' (rows, SHA-256 hex), as
    ``gmp_edge.integrity.digest.combine_groups`` makes it (a unit test keeps them equal)."""
    h = hashlib.sha256(b"gmp-edge readings by equipment 1\n")
    for key in sorted(groups):
        n, d = groups[key]
        h.update(f"{key}\t{n}\t{d}\n".encode())
    return h.hexdigest()


@dataclass
class _SealPlan:
    """What the readings pass needs of a chain that holds."""

    name: str
    tag_ids: dict[str, int]
    full: int = 0
    straddling: int = 0
    rows_full: int = 0
    rows_chain: int = 0
    straddling_seqs: list[int] = field(default_factory=list)

    def covering(self, c: _Check) -> Iterator[_Covering]:
        """The blocks that sealed rows of readings.csv, in order (the member read again,
        beside readings.csv: a long chain is never held in memory)."""
        with c.zf.open(self.name) as raw:
            for line in io.TextIOWrapper(raw, encoding="utf-8"):
                b = json.loads(line)
                if b[10] is not None:
                    yield _covering(b)


def _anchor(c: _Check, info: Any, fp: str | None) -> tuple[int, str, str] | None:
    """Check the anchor line the package carries: (seal seq, seal hash, description), or
    None when it is no anchor at all. Its signature must be by the package's key."""
    try:
        from cryptography.exceptions import InvalidSignature
    except ImportError:  # pragma: no cover - environment problem, reported by _signature
        return None
    where = "the anchor"
    try:
        where = f"line {int(info['file_line'])} of the box's anchors file {info['file']}"
        d = json.loads(info["line"])
        signature = base64.b64decode(d.pop("signature"), validate=True)
        seq, sha, key = int(d["seal_seq"]), str(d["seal_sha256"]), str(d["key"])
        desc = f"the {d['kind']} anchor of {d['at']} ({where})"
        # the bytes it signs: the line without its signature (integrity.anchors.payload)
        payload = json.dumps(d, sort_keys=True, separators=(",", ":")).encode()
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        c.problem(f"manifest.json: {where} is not a signed anchor ({exc!r})")
        return None
    if fp is None or c.public is None:
        c.problem(f"{desc}: its signature cannot be checked without the package's public key")
    elif key != fp:
        c.problem(
            f"{desc} is signed by key {key}, this package by key {fp}: the package was not"
            " signed by the box whose chain it carries (re-signed by another key holder)"
        )
    else:
        try:
            c.public.verify(signature, payload)
        except InvalidSignature:
            c.problem(f"{desc}: its signature does not match its content (the anchor was edited)")
        else:
            c.checked.append(
                f"{desc}: valid Ed25519 signature by the key that signed this package ({fp})"
            )
    return seq, sha, desc


def _seal(c: _Check, manifest: dict[str, Any], fp: str | None) -> _SealPlan | None:
    """Check the chain heads: the blocks link up to the head, the anchor signs one of them;
    returns what the readings pass recomputes (None: nothing to recompute against)."""
    if manifest.get("format_version") == 1:
        c.unproven.append(
            "format 1 package: it carries no chain heads, readings.csv is not proven against"
            " the box's seal ledger"
        )
        return None
    info: Any = manifest.get("seal")
    try:
        name = str(info["file"])
        head_seq, head_sha = int(info["head"]["seq"]), str(info["head"]["sha256"])
        first, prev = int(info["segment"]["first_seq"]), str(info["segment"]["prev_sha256"])
        stated_blocks = int(info["segment"]["blocks"])
        tag_ids = {str(k): int(v) for k, v in info["tag_ids"].items()}
        stated: dict[str, Any] = dict(info["readings"])
        unanchored = int(info["unanchored_blocks"])
        anchor_info, no_anchor = info["anchor"], info.get("no_anchor")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        c.problem(f"manifest.json: the chain heads (seal) are missing or malformed ({exc!r})")
        return None
    if name not in c.names:
        if name not in {f.get("path") for f in manifest.get("files", []) if isinstance(f, dict)}:
            c.problem(f"{name}: missing from the package")
        return None  # else reported with the file list
    anchor = None if anchor_info is None else _anchor(c, anchor_info, fp)
    anchored = None if anchor is None else anchor[0]
    if anchor_info is not None and anchor is None:
        return None
    if info.get("anchored_seq") != anchored:
        c.problem(
            f"manifest.json: states the anchor signs block {info.get('anchored_seq')}, its"
            f" line says {anchored}"
        )
    if unanchored != head_seq - (anchored or 0):
        c.problem(
            f"manifest.json: states {unanchored} unanchored blocks, the head is block {head_seq}"
            f" and the anchor signs block {anchored or 0}"
        )
    if first == 1 and prev != GENESIS:
        c.problem(f"{name}: the chain starts at block 1, but not from the genesis hash")
        return None
    hashes = {first - 1: prev}  # the anchored block's hash, once walked
    plan = _SealPlan(name, tag_ids)
    covering = covering_unanchored = 0
    expect = first
    try:
        with c.zf.open(name) as raw:
            for n, line in enumerate(io.TextIOWrapper(raw, encoding="utf-8"), start=1):
                b = json.loads(line)
                if not _is_block(b):
                    c.problem(f"{name}: line {n} is not a seal block")
                    return None
                if b[0] != expect:
                    c.problem(
                        f"{name}: line {n} holds block {b[0]} where block {expect} belongs:"
                        " blocks were removed or reordered"
                    )
                    return None
                if seal_block_hash(prev, b[:9]) != b[9]:
                    c.problem(
                        f"{name}: seal block {b[0]} ({iso(b[1])}): its hash does not follow"
                        " from its content and the block before (the block was changed)"
                    )
                    return None
                prev = b[9]
                if b[0] == anchored:
                    hashes[b[0]] = prev
                expect += 1
                if b[10] is None:
                    continue
                full = b[11] == "full" and b[6] is not None
                if b[10] > b[5]:
                    c.problem(
                        f"{name}: seal block {b[0]} sealed {b[5]} readings, not the {b[10]}"
                        " of readings.csv it is said to hold"
                    )
                    return None
                edges = [x for first, count in b[12] for x in (first, first + count - 1)]
                if edges != sorted(edges) or (edges and not b[3] <= edges[0] <= edges[-1] <= b[4]):
                    c.problem(
                        f"{name}: seal block {b[0]}: the rowids it gives its rows of"
                        f" readings.csv are not in its range {b[3]}..{b[4]}, in order"
                    )
                    return None
                covering += 1
                covering_unanchored += anchored is None or b[0] > anchored
                if full:
                    plan.full += 1
                    plan.rows_full += b[10]
                else:
                    plan.straddling += 1
                    plan.rows_chain += b[10]
                    if len(plan.straddling_seqs) < _SHOWN_SEQS:
                        plan.straddling_seqs.append(b[0])
    except (*_DAMAGE, UnicodeDecodeError) as exc:
        c.problem(f"{name}: cannot be parsed ({exc})")
        return None
    last = expect - 1
    if (last, prev) != (head_seq, head_sha):
        c.problem(
            f"{name}: the chain ends at block {last} (sha256 {prev}), not at the head"
            f" manifest.json states (block {head_seq}, sha256 {head_sha})"
        )
        return None
    if stated_blocks != last - first + 1:
        c.problem(f"manifest.json: states {stated_blocks} blocks, {name} has {last - first + 1}")
    c.checked.append(
        f"{name}: seal blocks {first}..{last} ({last - first + 1}) chained, every hash"
        f" recomputed, up to the package's head: block {head_seq}, sha256 {head_sha}"
    )
    if anchor is not None:
        seq, sha, desc = anchor
        if seq not in hashes:
            c.problem(f"{desc} signs seal block {seq}, which is not in {name} ({first}..{last})")
        elif hashes[seq] != sha:
            c.problem(
                f"{desc} signs seal block {seq} with sha256 {sha}; the chain here has"
                f" {hashes[seq]}: the chain was rewritten"
            )
        else:
            c.checked.append(f"the anchor signs seal block {seq}, which is in this chain")
            if unanchored:
                c.unproven.append(
                    f"seal blocks {seq + 1}..{head_seq} ({unanchored}) follow the anchor: they"
                    " were not anchored yet at export and rest on this package's signature"
                    f" alone ({covering_unanchored} of them sealed rows of readings.csv)"
                )
    else:
        c.unproven.append(
            f"no signed anchor covers the chain ({no_anchor}): its blocks rest on this"
            " package's signature alone"
        )
    mine = {
        "covering_blocks": covering,
        "fully_proven_blocks": plan.full,
        "straddling_blocks": plan.straddling,
        "rows_fully_proven": plan.rows_full,
        "rows_proven_by_chain_only": plan.rows_chain,
    }
    for key, value in mine.items():
        if stated.get(key) != value:
            c.problem(f"manifest.json: states {key} {stated.get(key)}, {name} has {value}")
    if stated.get("rows_in_no_block"):
        c.problem(
            f"readings.csv: {stated['rows_in_no_block']} rows are in no sealed block (written"
            " outside gmp-edge); the rows cannot be matched with their blocks, none is proven"
        )
        return None
    return plan


class _ReadingsProof:
    """Recomputes, while readings.csv is read, the readings digest of every fully proven
    block from its rows (theirs are consecutive: rows and blocks are both in rowid order)."""

    def __init__(self, blocks: Iterator[_Covering], tag_ids: dict[str, int]):
        self._blocks = blocks
        self._tag_ids = tag_ids
        self._first = 0  # the index of the current block's first row in readings.csv
        self._groups: dict[str, tuple[Any, int]] = {}  # group -> (SHA-256, rows)
        self.attributed = 0
        self.proven: list[_Covering] = []
        self.failed: list[_Covering] = []
        self._cur: _Covering | None = None
        self._ids: Iterator[int] = iter(())
        self._next_block()

    def _next_block(self) -> None:
        self._cur = next(self._blocks, None)
        self._ids = iter(()) if self._cur is None else self._cur.rowids()
        self._groups = {}

    def add(self, index: int, row: list[str] | None, quoted: list[bool] | None) -> None:
        """Feed record ``index`` (0: the first after the header)."""
        while self._cur is not None and index >= self._first + self._cur.rows:
            self._end()
        cur = self._cur
        if cur is None or not cur.full:
            return
        rowid = next(self._ids)
        sealed = None if row is None else _sealed_repr(rowid, row, quoted, self._tag_ids)
        # a record that cannot be a stored row: a digest no block has
        key = group_of(row[0]) if row else "?"
        h, n = self._groups.get(key) or (hashlib.sha256(), 0)
        h.update(b"\x00\n" if sealed is None else (sealed + "\n").encode())
        self._groups[key] = (h, n + 1)

    def _end(self) -> None:
        cur = self._cur
        assert cur is not None
        if cur.full:
            mine = {k: (n, h.hexdigest()) for k, (h, n) in self._groups.items()}
            given = {k: (n, d) for k, n, d in cur.others}
            whole = (
                not set(mine) & set(given)
                and sum(n for n, _ in mine.values()) + sum(n for n, _ in given.values()) == cur.n
                and combine_groups({**mine, **given}) == cur.sha256
            )
            (self.proven if whole else self.failed).append(cur)
        self._first += cur.rows
        self.attributed += cur.rows
        self._next_block()

    def finish(self, c: _Check, name: str, rows: int, plan: _SealPlan) -> None:
        """After the last record: name every block whose readings differ, say what is proven."""
        try:
            while self._cur is not None:
                if rows < self._first + self._cur.rows:
                    c.problem(
                        f"{name}: ends before the last of the rows of seal block"
                        f" {self._cur.seq} (lines {self._first + 2}.."
                        f"{self._first + self._cur.rows + 1}): rows were removed"
                    )
                    break
                self._end()
        except (*_DAMAGE, UnicodeDecodeError) as exc:
            c.problem(f"{SEAL_FILE}: cannot be parsed ({exc})")
            return
        for b in self.failed[:MAX_ROW_PROBLEMS]:
            c.problem(
                f"{name}: the readings of seal block {b.seq} ({iso(b.ts_us)}, rowids"
                f" {b.lo}..{b.hi}) are not the {b.n} the block sealed: a reading was changed"
                " after it was acquired"
            )
        if len(self.failed) > MAX_ROW_PROBLEMS:
            c.problem(f"{name}: and {len(self.failed) - MAX_ROW_PROBLEMS} more seal blocks differ")
        if rows > self.attributed:
            c.problem(
                f"{name}: {rows - self.attributed} rows are in none of the blocks"
                f" {plan.name} lists: added"
            )
        if self.proven and not self.failed:
            c.checked.append(
                f"{name}: {sum(b.rows for b in self.proven)} rows fully proven: the readings"
                f" digest of each of the {len(self.proven)} blocks that sealed them,"
                " recomputed from these rows and the other equipment's group digests, is the"
                " one the block sealed"
            )
        if plan.straddling:
            more = ", ..." if plan.straddling > len(plan.straddling_seqs) else ""
            c.unproven.append(
                f"{plan.rows_chain} rows of {name} are proven by the chain alone, not by their"
                f" content: the {plan.straddling} blocks that sealed them (seal blocks"
                f" {', '.join(map(str, plan.straddling_seqs))}{more}) straddle the batch"
                " window: they also sealed readings of the batch's own equipment outside it,"
                " not in this package, so their digest cannot be recomputed here"
            )


def _store_check(c: _Check, manifest: dict[str, Any]) -> None:
    if manifest.get("format_version") == 1:
        return
    if "store_check_at_export" not in manifest:
        c.problem("manifest.json: has no store check at export")
        return
    v = manifest["store_check_at_export"]
    if v is None:
        c.unproven.append(
            "the store was not checked at export ('gmp-edge verify' was not run): the package"
            " does not say whether the rest of the box's record was intact"
        )
        return
    if not isinstance(v, dict):
        c.problem("manifest.json: the store check at export is malformed")
        return
    problems = [str(p) for p in v.get("problems") or []]
    if v.get("verified") is True and not problems:
        summary = "; ".join(" ".join(str(line).split()) for line in v.get("summary") or [])
        scope = f" (it checked {v['scope']})" if v.get("scope") else ""
        c.checked.append(f"store check at export ('gmp-edge verify'): verified{scope}: {summary}")
    else:
        c.problem(
            "store check at export ('gmp-edge verify'): the store did NOT verify: "
            + "; ".join(problems[:MAX_ROW_PROBLEMS] or ["(no problem named)"])
        )


def _readings(c: _Check, manifest: dict[str, Any], plan: _SealPlan | None) -> None:
    info = manifest.get("readings", {})
    name = info.get("file", "readings.csv")
    window = manifest.get("window", {})
    lo, hi = window.get("start_us", -(2**63)), window.get("end_us", 2**63)
    if name not in c.names:
        return  # reported with the file list
    counts: dict[str, int] = {}
    bad: list[str] = []
    proof = None if plan is None else _ReadingsProof(plan.covering(c), plan.tag_ids)
    index = -1
    try:
        with c.zf.open(name) as raw:
            records = csv_records(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
            header = next(records, (None, None))[0]
            if header != READINGS_COLUMNS:
                c.problem(f"{name}: header {header} is not {READINGS_COLUMNS}")
                return
            for index, (row, quoted) in enumerate(records):
                line = index + 2
                if proof is not None:
                    proof.add(index, row, quoted)
                if row is None:
                    bad.append(f"line {line}: malformed quoting")
                    continue
                if len(row) != len(READINGS_COLUMNS):
                    bad.append(f"line {line}: {len(row)} fields instead of 12")
                    continue
                tag, ts, ts_iso, edge, edge_iso, src, src_iso, quality = row[:8]
                try:
                    t, e = int(ts), int(edge)
                    s = int(src) if src else None
                    if row[8]:
                        float(row[8])
                except ValueError:
                    bad.append(f"line {line}: a timestamp or value is not a number")
                    continue
                # most rows have edge == ts and no source time: one formatting, not three
                want_edge = ts_iso if e == t else iso(e)
                want_src = "" if s is None else ts_iso if s == t else iso(s)
                if ts_iso != iso(t) or edge_iso != want_edge or src_iso != want_src:
                    bad.append(f"line {line}: ISO time differs from its µs value")
                elif not lo <= t < hi:
                    bad.append(f"line {line}: time {ts_iso} outside the batch window")
                elif quality not in QUALITY_NAMES:
                    bad.append(f"line {line}: unknown quality {quality!r}")
                counts[tag] = counts.get(tag, 0) + 1
    except (*_DAMAGE, UnicodeDecodeError, csv.Error) as exc:
        c.problem(f"{name}: cannot be parsed ({exc})")
        return
    for b in bad[:MAX_ROW_PROBLEMS]:
        c.problem(f"{name}: {b}")
    if len(bad) > MAX_ROW_PROBLEMS:
        c.problem(f"{name}: {len(bad) - MAX_ROW_PROBLEMS} more malformed rows")
    stated: dict[str, int] = info.get("per_tag", {})
    differ = sorted(k for k in set(stated) | set(counts) if stated.get(k, 0) != counts.get(k, 0))
    for k in differ:
        c.problem(
            f"{name}: {counts.get(k, 0)} rows of tag {k}, manifest.json states {stated.get(k, 0)}"
        )
    if not bad and not differ:
        c.checked.append(
            f"{name}: {sum(counts.values())} rows of {len(counts)} tags parse, "
            "counts per tag match manifest.json"
        )
    if proof is not None and plan is not None:
        proof.finish(c, name, index + 1, plan)


def _config(c: _Check, manifest: dict[str, Any]) -> None:
    info = manifest.get("config", {})
    name = info.get("file")
    if not name or name not in c.names or "config.sha256" not in c.names:
        c.problem("manifest.json: the configuration file or config.sha256 is missing")
        return
    data, stated = c.read(name), c.read("config.sha256")
    if data is None or stated is None:
        return
    actual = hashlib.sha256(data).hexdigest()
    parts = stated.decode("utf-8", "replace").split()
    if not parts or parts[0] != actual:
        c.problem(f"config.sha256: does not match the SHA-256 of {name} ({actual})")
    elif info.get("sha256") != actual:
        c.problem(f"manifest.json: states config SHA-256 {info.get('sha256')}, {name} has {actual}")
    else:
        c.checked.append(f"{name}: SHA-256 equals config.sha256 and manifest.json")


def _records(c: _Check, manifest: dict[str, Any]) -> None:
    counts = manifest.get("counts", {})
    for name, key in (
        ("alarm_transitions.json", "alarm_transitions"),
        ("excursions/deviations.json", "deviations"),
        ("limit_sets.json", "limit_set_versions"),
        ("service_runs.json", None),
        ("signatures.json", None),
    ):
        doc = c.json(name) if name in c.names else None
        if doc is None:
            continue
        if key is not None and isinstance(doc, list) and len(doc) != counts.get(key):
            c.problem(f"{name}: {len(doc)} records, manifest.json states {counts.get(key)}")
    if manifest.get("review_included"):
        c.json("review.json")
    if "gaps.csv" in c.names:
        data = c.read("gaps.csv")
        if data is not None:
            try:
                rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
            except (UnicodeDecodeError, csv.Error) as exc:
                c.problem(f"gaps.csv: cannot be parsed ({exc})")
            else:
                if len(rows) - 1 != counts.get("gaps"):
                    c.problem(
                        f"gaps.csv: {len(rows) - 1} gaps, manifest.json states {counts.get('gaps')}"
                    )


def verify_package(path: str | Path, expected_fingerprint: str | None = None) -> VerifyReport:
    """Check an evidence package; ``expected_fingerprint`` is the box's key fingerprint.

    Without an expected fingerprint the signature still proves the package unchanged
    since it was signed, but not by which key holder: compare the reported fingerprint
    with the one recorded for the edge box.
    """
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        return VerifyReport(False, [f"{path}: not a readable ZIP file ({exc})"], [])
    try:
        with zf:
            return _verify(zf, expected_fingerprint)
    except Exception as exc:  # a doctored file must give a report, never a traceback
        return VerifyReport(False, [f"{path}: cannot be checked, malformed ({exc!r})"], [])


def _verify(zf: zipfile.ZipFile, expected_fingerprint: str | None) -> VerifyReport:
    """The checks, on an open ZIP."""
    c = _Check(zf)
    manifest_bytes, fp = _signature(c, expected_fingerprint)
    manifest: Any = None
    if manifest_bytes is not None:
        try:
            manifest = json.loads(manifest_bytes)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            c.problem(f"manifest.json: not valid JSON ({exc})")
    if not isinstance(manifest, dict):
        return VerifyReport(False, c.problems or ["manifest.json: unusable"], c.checked, None, fp)
    if manifest.get("format") != FORMAT or manifest.get("format_version") not in (
        SUPPORTED_VERSIONS
    ):
        c.problem(
            f"manifest.json: format {manifest.get('format')!r} version "
            f"{manifest.get('format_version')!r} is not supported"
        )
        return VerifyReport(False, c.problems, c.checked, manifest.get("batch_id"), fp)
    stated_fp = manifest.get("edge_box", {}).get("key_fingerprint")
    if fp is not None and stated_fp != fp:
        c.problem(f"manifest.json: names signing key {stated_fp}, public_key.pem is {fp}")
    _files(c, manifest)
    _audit(c, manifest)
    plan = _seal(c, manifest, fp)
    _readings(c, manifest, plan)
    _store_check(c, manifest)
    _config(c, manifest)
    _records(c, manifest)
    return VerifyReport(
        not c.problems, c.problems, c.checked, manifest.get("batch_id"), fp, c.unproven
    )


def main(argv: list[str] | None = None) -> int:
    """``verify FILE [--fingerprint HEX]``: print the report; exit 0 if verified, else 1."""
    parser = argparse.ArgumentParser(
        prog="python -m gmp_edge.evidence", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="verify an evidence package (offline)")
    v.add_argument("file", type=Path)
    v.add_argument("--fingerprint", help="the edge box's key fingerprint (SHA-256 hex)")
    args = parser.parse_args(argv)
    report = verify_package(args.file, args.fingerprint)
    print(report.text())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
