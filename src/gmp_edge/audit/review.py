"""Audit-trail reviews: a QA reviewer records that the trail of a period was reviewed.

Annex 11 §9 and the FDA's data-integrity guidance expect audit trails to be reviewed
regularly. A review record names the period and pins the entries it covers (first and
last sequence number and the last entry's hash), carries the reviewer's comment, and
is signed (review, then QA approval by somebody else). Amending the comment changes
the record, so signatures given before show as no longer valid.
"""

from __future__ import annotations

from dataclasses import dataclass

from gmp_edge.audit.book import SignableBook
from gmp_edge.clock import now_us
from gmp_edge.errors import GmpEdgeError
from gmp_edge.storage.schema import Schema
from gmp_edge.timefmt import signed_content_iso

_SCHEMA = """
create table if not exists audit_reviews(
    id text primary key,
    start_us integer not null,
    end_us integer not null,
    first_seq integer,
    last_seq integer,
    last_hash text,
    entries integer not null,
    comment text not null,
    created_by text not null,
    created_us integer not null,
    updated_us integer not null
);
"""
SCHEMA = Schema("audit_reviews", (_SCHEMA,))
RECORD_TYPE = "audit_review"


class ReviewError(GmpEdgeError, ValueError):
    """A review could not be created or amended; the message says why."""


@dataclass(frozen=True, slots=True)
class AuditReview:
    """One review of the audit trail over ``[start_us, end_us)``."""

    id: str
    start_us: int
    end_us: int
    first_seq: int | None
    last_seq: int | None
    last_hash: str | None
    entries: int
    comment: str
    created_by: str
    created_us: int
    updated_us: int

    def content(self) -> dict[str, object]:
        """What a signature on the review covers."""
        return {
            "period_start": signed_content_iso(self.start_us),
            "period_end": signed_content_iso(self.end_us),
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "last_hash": self.last_hash,
            "entries": self.entries,
            "comment": self.comment,
            "created_by": self.created_by,
        }


class AuditReviews(SignableBook[AuditReview]):
    """Audit-trail review records (signable: ``record_type`` = ``audit_review``)."""

    record_type = RECORD_TYPE
    not_found = ReviewError
    schema = SCHEMA

    def get(self, review_id: str) -> AuditReview | None:
        """The review, or None."""
        row = self._conn.execute(
            "select id, start_us, end_us, first_seq, last_seq, last_hash, entries, comment,"
            " created_by, created_us, updated_us from audit_reviews where id=?",
            (review_id,),
        ).fetchone()
        return None if row is None else AuditReview(*row)

    def list(self) -> list[AuditReview]:
        """Every review, newest first."""
        ids = [
            r[0]
            for r in self._conn.execute("select id from audit_reviews order by created_us desc")
        ]
        return [r for r in map(self.get, ids) if r is not None]

    # SignableBook
    signable = get

    def signed_content(self, record: AuditReview) -> object:
        """The review's signable content."""
        return record.content()

    def author_of(self, record: AuditReview) -> str:
        """Who created the review."""
        return record.created_by

    def create(self, actor: str, start_us: int, end_us: int, comment: str) -> AuditReview:
        """Pin the entries of a period and record the reviewer's comment (audited)."""
        if start_us >= end_us:
            raise ReviewError("the period's start must be before its end")
        if end_us > now_us():
            raise ReviewError("a review covers a period that has ended")
        if not comment.strip():
            raise ReviewError("say what was reviewed and what was found")
        now = now_us()
        with self.trail.atomic() as tx:
            first, last, n = tx.conn.execute(
                "select min(seq), max(seq), count(*) from audit where ts_us>=? and ts_us<?",
                (start_us, end_us),
            ).fetchone()
            last_hash = None
            if last is not None:
                last_hash = tx.conn.execute(
                    "select hash from audit where seq=?", (last,)
                ).fetchone()[0]
            count = tx.conn.execute("select count(*) from audit_reviews").fetchone()[0]
            review_id = f"AR-{count + 1:05d}"
            tx.conn.execute(
                "insert into audit_reviews values(?,?,?,?,?,?,?,?,?,?,?)",
                (review_id, start_us, end_us, first, last, last_hash, n, comment, actor, now, now),
            )
            review = AuditReview(
                review_id, start_us, end_us, first, last, last_hash, n, comment, actor, now, now
            )
            tx.append(
                actor, "audit_review.created", RECORD_TYPE, review_id, "", None, review.content()
            )
        return review

    def amend(self, actor: str, review_id: str, comment: str, reason: str) -> AuditReview:
        """Change the comment (old and new audited); earlier signatures stop applying."""
        if not reason.strip():
            raise ReviewError("say why the review is amended")
        if not comment.strip():
            raise ReviewError("the comment cannot be empty")
        with self.trail.atomic() as tx:
            row = tx.conn.execute(
                "select comment from audit_reviews where id=?", (review_id,)
            ).fetchone()
            if row is None:
                raise ReviewError(f"no audit review {review_id!r}")
            tx.conn.execute(
                "update audit_reviews set comment=?, updated_us=? where id=?",
                (comment, now_us(), review_id),
            )
            tx.append(
                actor,
                "audit_review.amended",
                RECORD_TYPE,
                review_id,
                reason,
                {"comment": row[0]},
                {"comment": comment},
            )
        review = self.get(review_id)
        assert review is not None
        return review
