"""The deviation workflow: investigate, amend, close (signed) and cancel.

Every step checks the version the person read (optimistic concurrency). Closing is one
transaction with its approval signature: a closure the signature rules refuse (e.g. the
approver raised the deviation by hand) leaves the deviation under investigation.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from typing import Any

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.clock import Clock
from gmp_edge.deviations import lifecycle
from gmp_edge.deviations.model import (
    Classification,
    Deviation,
    DeviationError,
    StaleVersion,
    Transition,
)
from gmp_edge.identity.users import User
from gmp_edge.monitoring.records import DeviationBook, RecordNotFound
from gmp_edge.services.errors import Conflict, Invalid, NotFound, Refused
from gmp_edge.services.signing import SigningService
from gmp_edge.signatures.manifest import Meaning, content_hash

Step = Callable[[Deviation], tuple[Deviation, Transition]]


class DeviationService:
    """Deviation records, changed only through their lifecycle."""

    def __init__(
        self,
        book: DeviationBook,
        trail: AuditTrail,
        signing: SigningService,
        clock: Clock,
    ):
        self._book = book
        self._trail = trail
        self._signing = signing
        self._clock = clock

    def get(self, dev_id: str) -> Deviation:
        """The deviation; NotFound if there is none."""
        d = self._book.get(dev_id)
        if d is None:
            raise NotFound(f"no deviation {dev_id!r}")
        return d

    def list(self, status: str | None = None) -> list[Deviation]:
        """Deviations, newest first (optionally of one status)."""
        return self._book.list(status)

    def for_batch(self, batch_id: str) -> builtins.list[Deviation]:
        """The deviations that name the batch."""
        return self._book.for_batch(batch_id)

    def _step(self, dev_id: str, expected_version: int, step: Step) -> Deviation:
        dev = self.get(dev_id)
        try:
            new, tr = step(dev)
            return self._book.update(new, tr, expected_version)
        except StaleVersion as exc:
            raise Conflict(str(exc)) from None
        except RecordNotFound as exc:
            raise NotFound(str(exc)) from None
        except DeviationError as exc:
            raise Invalid(str(exc)) from None

    def investigate(
        self, actor: str, dev_id: str, expected_version: int, investigator: str, note: str
    ) -> Deviation:
        """Open -> under investigation."""
        at = self._clock.now_us()
        return self._step(
            dev_id,
            expected_version,
            lambda d: lifecycle.start_investigation(
                d, expected_version, actor=actor, at_us=at, investigator=investigator, note=note
            ),
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
        at = self._clock.now_us()
        return self._step(
            dev_id,
            expected_version,
            lambda d: lifecycle.amend(
                d, expected_version, actor=actor, at_us=at, reason=reason, changes=changes
            ),
        )

    def cancel(self, actor: str, dev_id: str, expected_version: int, reason: str) -> Deviation:
        """Cancel a deviation raised in error."""
        at = self._clock.now_us()
        return self._step(
            dev_id,
            expected_version,
            lambda d: lifecycle.cancel(d, expected_version, actor=actor, at_us=at, reason=reason),
        )

    def close(
        self,
        signer: User,
        dev_id: str,
        expected_version: int,
        final_classification: Classification,
        impact_assessment: str | None = None,
        root_cause: str | None = None,
        capa_ref: str | None = None,
        classification_rationale: str | None = None,
        note: str = "",
    ) -> Deviation:
        """Under investigation -> closed, signed by ``signer`` (meaning: approval), in one
        transaction: either the deviation is closed and signed, or nothing changed."""
        at = self._clock.now_us()

        def step(d: Deviation) -> tuple[Deviation, Transition]:
            return lifecycle.close(
                d,
                expected_version,
                actor=signer.id,
                at_us=at,
                impact_assessment=impact_assessment,
                root_cause=root_cause,
                final_classification=final_classification,
                capa_ref=capa_ref,
                classification_rationale=classification_rationale,
                note=note,
            )

        try:
            with self._trail.atomic():
                closed = self._step(dev_id, expected_version, step)
                content = closed.to_dict()
                self._signing.sign_in_transaction(
                    signer,
                    DeviationBook.record_type,
                    dev_id,
                    content_hash(DeviationBook.record_type, dev_id, content),
                    Meaning.APPROVAL,
                    note or "deviation closed",
                    content=content,
                )
        except Refused as exc:
            self._trail.append(
                signer.id, "signature.refused", "deviation", dev_id, f"not closed: {exc}"
            )
            raise Refused(f"not closed: {exc}") from None
        return closed
