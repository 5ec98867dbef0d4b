"""Electronic signatures (21 CFR 11.50-11.200): one way to sign, whatever the record.

The person has been re-authenticated by the entry point just before (the password asked
again); here the signature rules apply and the signature is written with its audit entry.
Workflows that complete a record with a signature (release decision, deviation closure)
call :meth:`SigningService.sign_in_transaction` inside their own transaction, so the
record and its signature land together or not at all.
"""

from __future__ import annotations

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.identity.users import User
from gmp_edge.services.errors import Conflict, NotFound, Refused
from gmp_edge.signatures.manifest import Meaning, Signature, SigningRefused
from gmp_edge.signatures.register import Manifest, RecordChanged, SignatureRegister, UnknownRecord


class SigningService:
    """Signs records through the signature register, refusals audited."""

    def __init__(self, register: SignatureRegister, trail: AuditTrail):
        self.register = register
        self._trail = trail

    def manifest(self, record_type: str, record_id: str) -> Manifest:
        """The record's signatures, each with whether it still applies to the content."""
        try:
            return self.register.manifest(record_type, record_id)
        except UnknownRecord as exc:
            raise NotFound(str(exc)) from None

    def sign(
        self,
        signer: User,
        record_type: str,
        record_id: str,
        seen_sha256: str,
        meaning: Meaning,
        reason: str,
    ) -> Signature:
        """Sign the record whose content the signer saw (``seen_sha256``)."""
        try:
            return self.sign_in_transaction(
                signer, record_type, record_id, seen_sha256, meaning, reason
            )
        except Refused as exc:
            self._trail.append(signer.id, "signature.refused", record_type, record_id, str(exc))
            raise

    def sign_in_transaction(
        self,
        signer: User,
        record_type: str,
        record_id: str,
        seen_sha256: str,
        meaning: Meaning,
        reason: str,
        content: object | None = None,
    ) -> Signature:
        """Sign; inside an open :meth:`AuditTrail.atomic` block this joins it, and
        ``content`` is the record as that transaction has written it."""
        try:
            return self.register.sign(
                record_type,
                record_id,
                seen_sha256,
                signer.id,
                signer.full_name,
                signer.role,
                meaning,
                reason,
                content=content,
            )
        except UnknownRecord as exc:
            raise NotFound(str(exc)) from None
        except RecordChanged as exc:
            raise Conflict(str(exc)) from None
        except SigningRefused as exc:
            raise Refused(str(exc)) from None
