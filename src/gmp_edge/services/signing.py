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
from gmp_edge.services.errors import Conflict, NotFound, Refused, WorkflowError, translated
from gmp_edge.signatures.manifest import Meaning, Signature, SigningRefused, content_hash
from gmp_edge.signatures.register import Manifest, RecordChanged, SignatureRegister, UnknownRecord

#: How the register's refusals reach the caller.
_REFUSALS: dict[type[Exception], type[WorkflowError]] = {
    UnknownRecord: NotFound,
    RecordChanged: Conflict,
    SigningRefused: Refused,
}


class SigningService:
    """Signs records through the signature register, refusals audited."""

    def __init__(self, register: SignatureRegister, trail: AuditTrail):
        self.register = register
        self._trail = trail

    def manifest(self, record_type: str, record_id: str) -> Manifest:
        """The record's signatures, each with whether it still applies to the content."""
        with translated(_REFUSALS):
            return self.register.manifest(record_type, record_id)

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
            with translated(_REFUSALS):
                return self.register.sign(
                    record_type,
                    record_id,
                    seen_sha256,
                    signer.id,
                    signer.full_name,
                    signer.role,
                    meaning,
                    reason,
                )
        except Refused as exc:
            self._trail.append(signer.id, "signature.refused", record_type, record_id, str(exc))
            raise

    def sign_in_transaction(
        self,
        signer: User,
        record_type: str,
        record_id: str,
        content: object,
        meaning: Meaning,
        reason: str,
    ) -> Signature:
        """Sign ``content``, the record as the open :meth:`AuditTrail.atomic` block (which
        this joins) has written it; what the signer saw is that content's hash."""
        seen = content_hash(record_type, record_id, content)
        with translated(_REFUSALS):
            return self.register.sign(
                record_type,
                record_id,
                seen,
                signer.id,
                signer.full_name,
                signer.role,
                meaning,
                reason,
                content=content,
            )
