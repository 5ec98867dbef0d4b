"""The deviation workflow: investigate, amend, close (signed) and cancel.

Every step checks the version the person read (optimistic concurrency). Closing is one
transaction with its approval signature: a closure the signature rules refuse (e.g. the
approver raised the deviation by hand) leaves the deviation under investigation.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Unpack

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.clock import Clock
from gmp_edge.deviations import lifecycle
from gmp_edge.deviations.autoraise import concerned_batch_ids
from gmp_edge.deviations.batch import Batch
from gmp_edge.deviations.model import (
    Classification,
    Deviation,
    DeviationError,
    StaleVersion,
    Transition,
)
from gmp_edge.identity.users import User
from gmp_edge.monitoring.records import BatchBook, DeviationBook, RecordNotFound
from gmp_edge.services.errors import (
    Conflict,
    Invalid,
    NotFound,
    Refused,
    WorkflowError,
    translated,
)
from gmp_edge.services.signing import SigningService
from gmp_edge.signatures.manifest import Meaning

#: A lifecycle action: ``(deviation, expected_version, *, actor, at_us, ...)`` -> result.
Step = Callable[..., tuple[Deviation, Transition]]

#: How the lifecycle's refusals reach the caller (subclasses before DeviationError).
_REFUSALS: dict[type[Exception], type[WorkflowError]] = {
    StaleVersion: Conflict,
    RecordNotFound: NotFound,
    DeviationError: Invalid,
}


@dataclass(frozen=True)
class DeviationService:
    """Deviation records, changed only through their lifecycle."""

    book: DeviationBook
    trail: AuditTrail
    signing: SigningService
    clock: Clock
    batches: BatchBook

    def concerned_batches(self, dev: Deviation) -> builtins.list[str]:
        """Every batch the deviation concerns: those linked when it was raised or amended,
        and those in progress in its room or on its equipment during its excursion (a batch
        registered after the fact, back-dated, did not exist to be linked)."""
        ev = dev.evidence
        if ev is None:
            return sorted(dev.affected_batch_ids)
        end = ev.end_us if ev.end_us is not None else self.clock.now_us()
        return concerned_batch_ids(dev, self.batches.list(ev.start_us, end))

    def get(self, dev_id: str) -> Deviation:
        """The deviation; NotFound if there is none."""
        d = self.book.get(dev_id)
        if d is None:
            raise NotFound(f"no deviation {dev_id!r}")
        return d

    def list(self, status: str | None = None) -> list[Deviation]:
        """Deviations, newest first (optionally of one status)."""
        return self.book.list(status)

    def for_batch(self, batch: Batch) -> builtins.list[Deviation]:
        """The deviations that concern the batch: linked to it, or whose excursion was
        under way in its rooms or on its equipment during it (a back-dated batch)."""
        return self.book.about_batch(batch, self.clock.now_us())

    def _act(
        self, step: Step, dev_id: str, expected_version: int, actor: str, **fields: Any
    ) -> Deviation:
        """Apply one lifecycle ``step`` now and store the result, checking the version."""
        at = self.clock.now_us()
        dev = self.get(dev_id)
        with translated(_REFUSALS):
            new, tr = step(dev, expected_version, actor=actor, at_us=at, **fields)
            return self.book.update(new, tr, expected_version)

    def investigate(
        self, actor: str, dev_id: str, expected_version: int, investigator: str, note: str
    ) -> Deviation:
        """Open -> under investigation."""
        return self._act(
            lifecycle.start_investigation,
            dev_id,
            expected_version,
            actor,
            investigator=investigator,
            note=note,
        )

    def amend(
        self,
        actor: str,
        dev_id: str,
        expected_version: int,
        reason: str,
        changes: Mapping[str, Any],
    ) -> Deviation:
        """Record findings (impact, root cause, CAPA, affected batches...)."""
        return self._act(
            lifecycle.amend, dev_id, expected_version, actor, reason=reason, changes=changes
        )

    def cancel(self, actor: str, dev_id: str, expected_version: int, reason: str) -> Deviation:
        """Cancel a deviation raised in error."""
        return self._act(lifecycle.cancel, dev_id, expected_version, actor, reason=reason)

    def close(
        self,
        signer: User,
        dev_id: str,
        expected_version: int,
        final_classification: Classification,
        **findings: Unpack[lifecycle.Findings],
    ) -> Deviation:
        """Under investigation -> closed, signed by ``signer`` (meaning: approval), in one
        transaction: either the deviation is closed and signed, or nothing changed.

        ``findings`` (impact assessment, root cause, CAPA, rationale, note) are those of
        :func:`gmp_edge.deviations.lifecycle.close`."""
        try:
            with self.trail.atomic():
                closed = self._act(
                    lifecycle.close,
                    dev_id,
                    expected_version,
                    signer.id,
                    final_classification=final_classification,
                    **findings,
                )
                self.signing.sign_in_transaction(
                    signer,
                    DeviationBook.record_type,
                    dev_id,
                    closed.to_dict(),
                    Meaning.APPROVAL,
                    findings.get("note") or "deviation closed",
                )
        except Refused as exc:
            self.trail.append(
                signer.id, "signature.refused", "deviation", dev_id, f"not closed: {exc}"
            )
            raise Refused(f"not closed: {exc}") from None
        return closed
