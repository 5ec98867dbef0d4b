"""Pure signature logic: content hashes, manifests, validity, who may sign what.

A signature records the signer's id and printed name, the UTC time and the meaning,
and the SHA-256 of the exact content signed (canonical JSON). It is valid only while
the record's current content hashes to the same value: any later change to the record
shows every earlier signature as no longer valid, without touching the signatures.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from gmp_edge.errors import GmpEdgeError
from gmp_edge.identity.roles import Permission, Role, allowed


class Meaning(StrEnum):
    """What the signer states by signing (shown with every signature)."""

    AUTHORSHIP = "authorship"  # I wrote / propose this
    REVIEW = "review"  # I reviewed this
    APPROVAL = "approval"  # I approve this (QA)
    RESPONSIBILITY = "responsibility"  # I take responsibility for this decision (release)


# the permission each meaning needs; administrators never sign GMP decisions
MEANING_PERMISSION: dict[Meaning, Permission | None] = {
    Meaning.AUTHORSHIP: None,  # anyone who may write the record may sign as its author
    Meaning.REVIEW: Permission.REVIEW,
    Meaning.APPROVAL: Permission.APPROVE,
    Meaning.RESPONSIBILITY: Permission.APPROVE,
}


def content_hash(record_type: str, record_id: str, content: object) -> str:
    """SHA-256 over the canonical JSON of a record's signable content."""
    body = json.dumps(
        {"record_type": record_type, "record_id": record_id, "content": content},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Signature:
    """One executed signature (the manifest a reader sees)."""

    id: int
    record_type: str
    record_id: str
    content_sha256: str
    signer: str
    printed_name: str
    meaning: Meaning
    ts_us: int
    reason: str


@dataclass(frozen=True, slots=True)
class SignatureStatus:
    """A signature with its validity against the record as it is now."""

    signature: Signature
    valid: bool
    why: str


def status(sig: Signature, current_sha256: str | None) -> SignatureStatus:
    """Valid while the record's content still hashes to what was signed."""
    if current_sha256 is None:
        return SignatureStatus(sig, False, "the signed record no longer exists")
    if current_sha256 != sig.content_sha256:
        return SignatureStatus(
            sig, False, "the record changed after it was signed; this signature no longer applies"
        )
    return SignatureStatus(sig, True, "signed content unchanged")


class SigningRefused(GmpEdgeError, PermissionError):
    """A signature may not be executed; the message says why."""


def check_may_sign(
    signer: str,
    role: Role,
    meaning: Meaning,
    author: str,
    earlier: Sequence[Signature],
    on_record: Sequence[Signature] = (),
) -> None:
    """Refuse a signature the rules forbid (raises SigningRefused).

    ``earlier`` are the signatures on the content about to be signed, ``on_record``
    every signature the record has had (any version of its content).

    - the role must grant the meaning's permission;
    - separation of duties: the record's author cannot review, approve or take
      responsibility for it; one person signs the record with one meaning only (a
      reviewer does not also approve, whatever version of the content); and the same
      person cannot sign twice with one meaning on the same content;
    - only the author signs authorship.
    """
    needed = MEANING_PERMISSION[meaning]
    if needed is not None and not allowed(role, needed):
        raise SigningRefused(f"role {role.value} may not sign with meaning {meaning.value!r}")
    if meaning is Meaning.AUTHORSHIP:
        if signer != author:
            raise SigningRefused(f"only the author ({author}) signs authorship")
    elif signer == author:
        raise SigningRefused(
            f"{signer} proposed this record and cannot sign its {meaning.value} "
            "(separation of duties)"
        )
    for s in earlier:
        if s.signer == signer and s.meaning is meaning:
            raise SigningRefused(f"{signer} has already signed this content as {meaning.value}")
    if meaning is not Meaning.AUTHORSHIP:
        for s in on_record:
            if s.signer == signer and s.meaning is not meaning:
                raise SigningRefused(
                    f"{signer} has signed this record as {s.meaning.value} and cannot also "
                    f"sign its {meaning.value} (separation of duties)"
                )
