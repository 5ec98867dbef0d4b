"""Executed signatures in the edge box's database, each with its audit entry.

The table is append-only (triggers refuse UPDATE and DELETE). Records that can be
signed register a :class:`SignableRecords` provider that gives their current content
and author; the register hashes the content when signing and again when showing a
signature, so a record changed after signing shows its signatures as no longer valid.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Protocol

from gmp_edge.audit.book import RecordBook
from gmp_edge.audit.trail import AuditTrail
from gmp_edge.clock import now_us
from gmp_edge.errors import GmpEdgeError
from gmp_edge.identity.roles import Role
from gmp_edge.signatures.manifest import (
    Meaning,
    Signature,
    SignatureStatus,
    SigningRefused,
    check_may_sign,
    content_hash,
    status,
)
from gmp_edge.storage.schema import Schema

_SCHEMA = """
create table if not exists signatures(
    id integer primary key,
    record_type text not null,
    record_id text not null,
    content_sha256 text not null,
    signer text not null,
    printed_name text not null,
    meaning text not null,
    ts_us integer not null,
    reason text not null,
    unique(record_type, record_id, content_sha256, signer, meaning)
);
create index if not exists signatures_record on signatures(record_type, record_id);
create trigger if not exists signatures_no_update before update on signatures
begin select raise(abort, 'signatures cannot be changed'); end;
create trigger if not exists signatures_no_delete before delete on signatures
begin select raise(abort, 'signatures cannot be deleted'); end;
"""
SCHEMA = Schema("signatures", (_SCHEMA,))


class SignableRecords(Protocol):
    """What the register needs from a kind of record that can be signed."""

    @property
    def record_type(self) -> str:
        """The ``record_type`` its signatures and audit entries name."""
        ...

    def content(self, record_id: str) -> object | None:
        """The record's signable content as JSON-able data (None if no such record)."""
        ...

    def author(self, record_id: str) -> str:
        """Who proposed or created the record (separation of duties)."""
        ...


class RecordChanged(GmpEdgeError, ValueError):
    """The content the signer saw is not the record's content any more."""


class UnknownRecord(GmpEdgeError, LookupError):
    """No such record type or record."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """A record's signature manifest: every signature with its current validity."""

    record_type: str
    record_id: str
    content_sha256: str | None
    signatures: list[SignatureStatus]


class SignatureRegister(RecordBook):
    """Signs records and shows their manifests."""

    schema = SCHEMA

    def __init__(self, trail: AuditTrail):
        super().__init__(trail)
        self._kinds: dict[str, SignableRecords] = {}

    def register(self, kind: SignableRecords) -> None:
        """Make a kind of record signable."""
        self._kinds[kind.record_type] = kind

    def record_types(self) -> list[str]:
        """The kinds of record that can be signed."""
        return sorted(self._kinds)

    def current_hash(self, record_type: str, record_id: str) -> str | None:
        """SHA-256 of the record's content now (None if it does not exist)."""
        kind = self._kinds.get(record_type)
        if kind is None:
            raise UnknownRecord(f"no signable record type {record_type!r}")
        content = kind.content(record_id)
        return None if content is None else content_hash(record_type, record_id, content)

    def signatures(
        self, record_type: str, record_id: str, conn: sqlite3.Connection | None = None
    ) -> list[Signature]:
        """Every signature on the record (any content version), oldest first; read
        through ``conn`` (an open write transaction) when given."""
        rows = (
            (conn or self._conn)
            .execute(
                "select id, record_type, record_id, content_sha256, signer, printed_name, meaning,"
                " ts_us, reason from signatures where record_type=? and record_id=? order by id",
                (record_type, record_id),
            )
            .fetchall()
        )
        return [
            Signature(r[0], r[1], r[2], r[3], r[4], r[5], Meaning(r[6]), r[7], r[8]) for r in rows
        ]

    def manifest(self, record_type: str, record_id: str) -> Manifest:
        """Signatures with validity against the record's current content."""
        current = self.current_hash(record_type, record_id)
        sigs = self.signatures(record_type, record_id)
        return Manifest(record_type, record_id, current, [status(s, current) for s in sigs])

    def sign(
        self,
        record_type: str,
        record_id: str,
        seen_sha256: str,
        signer: str,
        printed_name: str,
        role: Role,
        meaning: Meaning,
        reason: str,
        content: object | None = None,
    ) -> Signature:
        """Execute a signature. The caller has re-authenticated the signer just before.

        ``seen_sha256`` is the content hash the signer was shown: if the record changed
        since, nothing is signed (RecordChanged). Separation of duties and role rules
        raise SigningRefused; either way nothing is written. The signature and its audit
        entry are one transaction; called inside :meth:`AuditTrail.atomic`, they join the
        caller's transaction, and ``content`` is then the record as the caller has just
        written it (the record's book reads committed rows only).
        """
        kind = self._kinds.get(record_type)
        if kind is None:
            raise UnknownRecord(f"no signable record type {record_type!r}")
        if content is None:
            content = kind.content(record_id)
        if content is None:
            raise UnknownRecord(f"no {record_type} {record_id!r}")
        current = content_hash(record_type, record_id, content)
        if current != seen_sha256:
            raise RecordChanged(
                f"{record_type} {record_id} changed since it was shown (now sha256 {current}); "
                "review it again before signing"
            )
        author = kind.author(record_id)
        ts = now_us()
        with self.trail.atomic() as tx:
            # checked inside the write transaction: a concurrent signature by the same
            # person with another meaning cannot slip in between check and insert
            on_record = self.signatures(record_type, record_id, tx.conn)
            earlier = [s for s in on_record if s.content_sha256 == current]
            check_may_sign(signer, role, meaning, author, earlier, on_record)
            try:
                cur = tx.conn.execute(
                    "insert into signatures(record_type, record_id, content_sha256, signer,"
                    " printed_name, meaning, ts_us, reason) values(?,?,?,?,?,?,?,?)",
                    (
                        record_type,
                        record_id,
                        current,
                        signer,
                        printed_name,
                        meaning.value,
                        ts,
                        reason,
                    ),
                )
            except sqlite3.IntegrityError:
                raise SigningRefused(
                    f"{signer} has already signed this content as {meaning.value}"
                ) from None
            sig_id = int(cur.lastrowid or 0)
            tx.append(
                signer,
                "signature.executed",
                record_type,
                record_id,
                reason,
                None,
                {
                    "signature_id": sig_id,
                    "meaning": meaning.value,
                    "printed_name": printed_name,
                    "content_sha256": current,
                },
            )
        sig = Signature(
            sig_id, record_type, record_id, current, signer, printed_name, meaning, ts, reason
        )
        # a record kind may act on its signatures (an approved limit set takes effect)
        hook = getattr(kind, "signed", None)
        if hook is not None:
            hook(sig)
        return sig
