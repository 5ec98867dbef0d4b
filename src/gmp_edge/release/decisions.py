"""Release decisions: release, reject or hold a batch, bound to the review that was seen.

A decision record holds the decision, the comment and the SHA-256 of the compiled review
the QA approver looked at. It is signable (record type ``batch_decision``, record id
``<batch>#<n>``); its author is the review compiled by the system, so the person who
decides signs it with meaning *responsibility*. A later decision on the same batch is a
new record: nothing is overwritten, the history stays readable.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from gmp_edge.audit.book import RecordBook
from gmp_edge.clock import now_us
from gmp_edge.errors import GmpEdgeError
from gmp_edge.storage.schema import Schema
from gmp_edge.timefmt import signed_content_iso

RECORD_TYPE = "batch_decision"
AUTHOR = "system:review"
_SCHEMA = """
create table if not exists batch_decisions(
    id text primary key,
    batch_id text not null,
    n integer not null,
    decision text not null,
    comment text not null,
    review_sha256 text not null,
    blockers integer not null,
    decided_by text not null,
    decided_us integer not null,
    unique(batch_id, n)
);
create trigger if not exists batch_decisions_no_update before update on batch_decisions
begin select raise(abort, 'decisions cannot be changed; record a new one'); end;
create trigger if not exists batch_decisions_no_delete before delete on batch_decisions
begin select raise(abort, 'decisions cannot be deleted'); end;
"""
SCHEMA = Schema("batch_decisions", (_SCHEMA,))


# left out of the hash a decision binds: when it was compiled, and the whole trail's
# head (it moves with every sign-in); the entries about the batch's own records stay in
_VOLATILE = ("compiled_us", "compiled", "audit")


def review_sha256(review: dict[str, Any]) -> str:
    """The review's hash as a decision binds it (compilation time left out)."""
    body = {k: v for k, v in review.items() if k not in _VOLATILE}
    data = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)
    return hashlib.sha256(data.encode()).hexdigest()


class Decision(StrEnum):
    """What QA decides."""

    RELEASE = "release"
    REJECT = "reject"
    HOLD = "hold"


class DecisionError(GmpEdgeError, ValueError):
    """A decision was refused; the message says why."""


@dataclass(frozen=True, slots=True)
class BatchDecision:
    """One recorded decision."""

    id: str
    batch_id: str
    n: int
    decision: Decision
    comment: str
    review_sha256: str
    blockers: int
    decided_by: str
    decided_us: int

    def content(self) -> dict[str, object]:
        """What the signature covers."""
        return {
            "batch_id": self.batch_id,
            "n": self.n,
            "decision": self.decision.value,
            "comment": self.comment,
            "review_sha256": self.review_sha256,
            "blockers": self.blockers,
            "decided_by": self.decided_by,
            "decided": signed_content_iso(self.decided_us),
        }


class DecisionBook(RecordBook):
    """Recorded decisions (signable)."""

    record_type = RECORD_TYPE
    schema = SCHEMA

    def _row(self, row: tuple[object, ...] | None) -> BatchDecision | None:
        if row is None:
            return None
        r = list(row)
        return BatchDecision(
            str(r[0]),
            str(r[1]),
            int(str(r[2])),
            Decision(str(r[3])),
            str(r[4]),
            str(r[5]),
            int(str(r[6])),
            str(r[7]),
            int(str(r[8])),
        )

    def get(self, decision_id: str) -> BatchDecision | None:
        """One decision."""
        return self._row(
            self._conn.execute(
                "select * from batch_decisions where id=?", (decision_id,)
            ).fetchone()
        )

    def for_batch(self, batch_id: str) -> list[BatchDecision]:
        """Every decision on a batch, oldest first."""
        rows = self._conn.execute(
            "select * from batch_decisions where batch_id=? order by n", (batch_id,)
        ).fetchall()
        return [d for d in map(self._row, rows) if d is not None]

    def record(
        self,
        actor: str,
        batch_id: str,
        decision: Decision,
        comment: str,
        review_sha256: str,
        blockers: int,
    ) -> BatchDecision:
        """Record a decision (audited); release is refused while blockers remain."""
        if not comment.strip():
            raise DecisionError("say why (the comment is part of the signed record)")
        if decision is Decision.RELEASE and blockers:
            raise DecisionError(
                f"release refused: the review lists {blockers} blocker(s); resolve them or "
                "decide hold/reject"
            )
        now = now_us()
        with self.trail.atomic() as tx:
            n = tx.conn.execute(
                "select coalesce(max(n), 0) + 1 from batch_decisions where batch_id=?",
                (batch_id,),
            ).fetchone()[0]
            d = BatchDecision(
                f"{batch_id}#{n}",
                batch_id,
                n,
                decision,
                comment,
                review_sha256,
                blockers,
                actor,
                now,
            )
            tx.conn.execute(
                "insert into batch_decisions values(?,?,?,?,?,?,?,?,?)",
                (
                    d.id,
                    d.batch_id,
                    d.n,
                    d.decision.value,
                    d.comment,
                    d.review_sha256,
                    d.blockers,
                    d.decided_by,
                    d.decided_us,
                ),
            )
            tx.append(
                actor, "batch.decision_recorded", RECORD_TYPE, d.id, comment, None, d.content()
            )
        return d

    # SignableRecords
    def content(self, record_id: str) -> object | None:
        """The decision's signable content."""
        d = self.get(record_id)
        return None if d is None else d.content()

    def author(self, record_id: str) -> str:
        """The review the decision rests on was compiled by the system."""
        return AUTHOR
