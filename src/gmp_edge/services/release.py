"""Batch release: the compiled review, and a decision signed on the review the person saw.

A decision and its signature (meaning: responsibility) are one transaction. A decision the
signature rules refuse is not recorded at all, so no "recorded but not signed" decision
can stand in the batch record.
"""

from __future__ import annotations

from dataclasses import dataclass

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.clock import Clock
from gmp_edge.identity.users import User
from gmp_edge.release.decisions import (
    RECORD_TYPE,
    BatchDecision,
    Decision,
    DecisionBook,
    DecisionError,
    review_sha256,
)
from gmp_edge.review.gather import BatchNotFound, review_batch
from gmp_edge.review.model import BatchReview
from gmp_edge.services.errors import Conflict, NotFound, Refused
from gmp_edge.services.records import PlantRecords
from gmp_edge.services.signing import SigningService
from gmp_edge.signatures.manifest import Meaning


@dataclass(frozen=True)
class ReleaseService:
    """Reviews of batches and the decisions on them."""

    engine: PlantRecords
    trail: AuditTrail
    decisions: DecisionBook
    signing: SigningService
    clock: Clock

    def review(self, batch_id: str) -> BatchReview:
        """Everything that happened in the batch's rooms and equipment, compiled now."""
        e = self.engine
        try:
            return review_batch(e.store, e.books, self.trail, e.cfg, batch_id, self.clock.now_us())
        except BatchNotFound as exc:
            raise NotFound(str(exc)) from None

    def decisions_on(self, batch_id: str) -> list[BatchDecision]:
        """Every decision on the batch, oldest first."""
        return self.decisions.for_batch(batch_id)

    def decide(
        self,
        signer: User,
        batch_id: str,
        decision: Decision,
        comment: str,
        seen_review_sha256: str,
    ) -> BatchDecision:
        """Record and sign ``decision`` on the review whose hash the signer saw.

        Refused (nothing written) when the review changed since it was shown, when
        release is asked while blockers remain, or when the signature rules refuse.
        """
        review = self.review(batch_id).to_dict()
        current = review_sha256(review)
        if current != seen_review_sha256:
            raise Conflict(
                "the review changed since it was shown (new data, deviation "
                "or signature); look at it again before deciding"
            )
        blockers = len((review.get("readiness") or {}).get("blockers", []))
        try:
            with self.trail.atomic():
                d = self.decisions.record(signer.id, batch_id, decision, comment, current, blockers)
                self.signing.sign_in_transaction(
                    signer, RECORD_TYPE, d.id, d.content(), Meaning.RESPONSIBILITY, comment
                )
        except DecisionError as exc:
            raise Conflict(str(exc)) from None
        except Refused as exc:
            self.trail.append(
                signer.id, "signature.refused", "batch", batch_id, f"not decided: {exc}"
            )
            raise Refused(f"not decided: {exc}") from None
        return d
