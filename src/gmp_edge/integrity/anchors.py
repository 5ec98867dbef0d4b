"""Signed anchors: the heads of the audit chain and the seal ledger, kept outside the store.

An anchor is one JSON line in ``<store>.anchors`` (opened for appending only, fsync'd):
when it was taken and why (``start``, ``periodic``, ``stop``, ``recovered`` after a crash,
``cli`` after a command that wrote to a stopped store, ``accepted`` when an administrator
accepted an unanchored tail),
the audit trail's newest entry (seq, SHA-256), the ledger's newest block (seq, SHA-256),
the box key's fingerprint and an Ed25519 signature over all of that. Whoever rewrites,
cuts back, empties or replaces the store cannot make it agree with anchors already
written, and cannot write new ones without the box key. Lines in the format of the
release before (``<time> seq=N sha256=H``, unsigned) are read as ``legacy`` anchors of the
audit chain alone.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gmp_edge.integrity.keys import fingerprint
from gmp_edge.timefmt import iso, parse_iso

ANCHORS_SUFFIX = ".anchors"
KINDS = ("start", "periodic", "stop", "recovered", "cli", "accepted")
# after these, nothing may be written until the next anchor: the service was not running
CLOSING_KINDS = ("stop", "cli", "accepted")
_LEGACY = re.compile(r"^(?P<at>\S+) seq=(?P<seq>\d+) sha256=(?P<sha>[0-9a-f]{64})$")


def anchors_path_for(store_path: str | Path) -> Path:
    """Where the anchors of the store at ``store_path`` are kept: ``<store>.anchors``
    (``var/gmp-edge.db`` -> ``var/gmp-edge.anchors``, as the release before kept them)."""
    return Path(store_path).with_suffix(ANCHORS_SUFFIX)


@dataclass(frozen=True, slots=True)
class Anchor:
    """One anchor as written (``signature`` base64; empty for a legacy line)."""

    at_us: int
    kind: str
    audit_seq: int
    audit_sha256: str
    seal_seq: int | None
    seal_sha256: str | None
    key: str
    signature: str = ""
    line: int = 0  # where in the file (1-based), for messages

    def payload(self) -> bytes:
        """The exact bytes the signature covers."""
        body = asdict(self)
        del body["signature"], body["line"]
        body["at"] = iso(self.at_us)
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    @property
    def legacy(self) -> bool:
        """A line of the release before: unsigned, the audit head alone."""
        return self.kind == "legacy"

    def describe(self) -> str:
        """'the stop anchor of 2026-12-03T08:00:00.000000Z (line 12)'."""
        return f"the {self.kind} anchor of {iso(self.at_us)} (line {self.line})"


def make_anchor(
    key: Ed25519PrivateKey,
    at_us: int,
    kind: str,
    audit: tuple[int, str],
    seal: tuple[int, str],
) -> Anchor:
    """A new anchor over the two heads, signed with the box key."""
    if kind not in KINDS:
        raise ValueError(f"unknown anchor kind {kind!r} (one of {', '.join(KINDS)})")
    unsigned = Anchor(at_us, kind, audit[0], audit[1], seal[0], seal[1], fingerprint(key))
    sig = base64.b64encode(key.sign(unsigned.payload())).decode()
    return Anchor(at_us, kind, audit[0], audit[1], seal[0], seal[1], unsigned.key, sig)


def append_anchor(path: Path, anchor: Anchor) -> None:
    """Append the anchor as one line and fsync it (raises OSError, e.g. on a full disk)."""
    body = asdict(anchor)
    del body["line"]
    body["at"] = iso(anchor.at_us)
    line = (json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def parse_anchors(text: str) -> tuple[list[Anchor], list[str]]:
    """The anchors in a file's text, and a sentence for every line that is not one."""
    anchors: list[Anchor] = []
    problems: list[str] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        legacy = _LEGACY.match(line)
        if legacy:
            try:
                at = parse_iso(legacy["at"])
            except ValueError:
                problems.append(f"line {n}: unreadable time {legacy['at']!r}")
                continue
            anchors.append(
                Anchor(at, "legacy", int(legacy["seq"]), legacy["sha"], None, None, "", "", n)
            )
            continue
        try:
            d = json.loads(line)
            anchors.append(
                Anchor(
                    int(d["at_us"]),
                    str(d["kind"]),
                    int(d["audit_seq"]),
                    str(d["audit_sha256"]),
                    None if d["seal_seq"] is None else int(d["seal_seq"]),
                    None if d["seal_sha256"] is None else str(d["seal_sha256"]),
                    str(d["key"]),
                    str(d["signature"]),
                    n,
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"line {n}: not an anchor ({type(exc).__name__}: {exc})")
    return anchors, problems


def read_anchors(path: Path) -> tuple[list[Anchor], list[str]]:
    """The anchors file's anchors and problems; a missing file has none."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [], []
    return parse_anchors(text)


def signature_problem(anchor: Anchor, public: Ed25519PublicKey) -> str | None:
    """Why the anchor's signature does not hold for the box key (None: it holds)."""
    if anchor.legacy:
        return None
    if anchor.key != fingerprint(public):
        return (
            f"{anchor.describe()} is signed by key {anchor.key[:16]}..., not by this box's key "
            f"{fingerprint(public)[:16]}..."
        )
    try:
        public.verify(base64.b64decode(anchor.signature, validate=True), anchor.payload())
    except (InvalidSignature, ValueError):
        return f"{anchor.describe()}: the signature does not match its content (edited)"
    return None
