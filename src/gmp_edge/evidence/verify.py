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
* the JSON files parse and their record counts equal the manifest's.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import sys
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

FORMAT = "gmp-edge-evidence"
SUPPORTED_VERSIONS = (1,)
GENESIS = "0" * 64
UNSIGNED = ("manifest.json", "manifest.sig")  # the two files the manifest cannot list
# the readings.csv header, which gmp_edge.evidence.readings_csv writes (it imports this)
READINGS_COLUMNS = [
    "tag", "ts_us", "ts", "ts_edge_us", "ts_edge", "ts_source_us", "ts_source",
    "quality", "value", "text", "message", "cause",
]  # fmt: skip
QUALITY_NAMES = frozenset(("good", "uncertain", "bad"))
MAX_ROW_PROBLEMS = 10


@dataclass
class VerifyReport:
    """The outcome: ``ok`` only if there is no problem at all."""

    ok: bool
    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    batch_id: str | None = None
    fingerprint: str | None = None  # of the public key in the package

    def text(self) -> str:
        """Human-readable report."""
        lines = [
            f"evidence package of batch {self.batch_id or '?'}: "
            + ("VERIFIED" if self.ok else f"NOT VERIFIED ({len(self.problems)} problem(s))"),
            f"signing key fingerprint: {self.fingerprint or '?'}",
        ]
        lines += [f"  PROBLEM: {p}" for p in self.problems]
        lines += [f"  ok: {c}" for c in self.checked]
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
        self.names = [i.filename for i in zf.infolist()]

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


def _readings(c: _Check, manifest: dict[str, Any]) -> None:
    info = manifest.get("readings", {})
    name = info.get("file", "readings.csv")
    window = manifest.get("window", {})
    lo, hi = window.get("start_us", -(2**63)), window.get("end_us", 2**63)
    if name not in c.names:
        return  # reported with the file list
    counts: dict[str, int] = {}
    bad: list[str] = []
    try:
        with c.zf.open(name) as raw:
            reader = csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
            header = next(reader, None)
            if header != READINGS_COLUMNS:
                c.problem(f"{name}: header {header} is not {READINGS_COLUMNS}")
                return
            for line, row in enumerate(reader, start=2):
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
    _readings(c, manifest)
    _config(c, manifest)
    _records(c, manifest)
    return VerifyReport(not c.problems, c.problems, c.checked, manifest.get("batch_id"), fp)


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
