"""Limit sets as signable records: a QA approval signature puts a proposal in force."""

from __future__ import annotations

from gmp_edge.clock import now_us
from gmp_edge.monitoring.engine import MonitoringEngine
from gmp_edge.signatures.manifest import Meaning, Signature


class LimitSetRecords:
    """Signable view of the limit-set book (record id ``<set>@v<version>``).

    Signing a proposed version with meaning *approval* approves it (the signature's
    rules already refused its proposer) and the engine switches to it at once.
    """

    record_type = "limit_set"

    def __init__(self, engine: MonitoringEngine):
        self.engine = engine
        self.book = engine.books.limit_sets

    def content(self, record_id: str) -> object | None:
        """The version's signable content."""
        return self.book.content(record_id)

    def author(self, record_id: str) -> str:
        """Who proposed the version."""
        return self.book.author(record_id)

    def signed(self, sig: Signature) -> None:
        """An approval signature on a proposal puts it in force."""
        if sig.meaning is not Meaning.APPROVAL:
            return
        set_id, _, v = sig.record_id.rpartition("@v")
        version = int(v)
        if self.book.status(set_id, version) != "proposed":
            return
        ls = self.book.approve(sig.signer, set_id, version, now_us())
        self.engine.switch_limit_set(ls)
