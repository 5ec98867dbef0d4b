"""Periodic review of the audit trail (Annex 11 §9): record a review over an ended period,
amend its comment with a reason. Signing it is the signing service's job."""

from __future__ import annotations

import builtins

from gmp_edge.audit.review import AuditReview, AuditReviews, ReviewError
from gmp_edge.services.errors import Invalid, NotFound

__all__ = ["AuditReview", "AuditReviewService"]


class AuditReviewService:
    """Audit-trail reviews, refusals as :mod:`gmp_edge.services.errors`."""

    def __init__(self, reviews: AuditReviews):
        self._reviews = reviews

    def list(self) -> builtins.list[AuditReview]:
        """Every review, newest first."""
        return self._reviews.list()

    def get(self, review_id: str) -> AuditReview:
        """One review; NotFound when there is none with that id."""
        r = self._reviews.get(review_id)
        if r is None:
            raise NotFound(f"no audit review {review_id!r}")
        return r

    def create(self, actor: str, start_us: int, end_us: int, comment: str) -> AuditReview:
        """Record a review of the trail over ``[start_us, end_us)`` (a period that ended)."""
        try:
            return self._reviews.create(actor, start_us, end_us, comment)
        except ReviewError as exc:
            raise Invalid(str(exc)) from None

    def amend(self, actor: str, review_id: str, comment: str, reason: str) -> AuditReview:
        """A corrected comment, with why; signatures given before no longer apply."""
        self.get(review_id)
        try:
            return self._reviews.amend(actor, review_id, comment, reason)
        except ReviewError as exc:
            raise Invalid(str(exc)) from None
