"""What leaves the box for a dossier: the batch report, the evidence package, the batch's
raw readings and the deviation investigation file; each export is audited with its hash.

The entry point chooses where the file goes (a temporary file for an HTTP download, a
path on the command line); the content and the audit entry are the same either way.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.clock import Clock
from gmp_edge.evidence.package import EvidenceError, PackageInfo, build_package, in_batch_scope
from gmp_edge.evidence.readings_csv import snapshot
from gmp_edge.integrity.keys import key_path_for
from gmp_edge.review.compile import period_end
from gmp_edge.services.errors import Conflict, NotFound
from gmp_edge.services.integrity import verify_for_export
from gmp_edge.services.records import PlantRecords
from gmp_edge.services.release import ReleaseService
from gmp_edge.signatures.register import SignatureRegister
from gmp_edge.timefmt import iso


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB pieces."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class ReadingsExport:
    """One consistent snapshot of a batch's readings, ready to stream (close ``conns``)."""

    conns: list[sqlite3.Connection]
    tag_ids: Mapping[int, str]
    start_us: int
    end_us: int


@dataclass(frozen=True)
class ExportService:
    """Exports of batch and deviation records."""

    engine: PlantRecords
    trail: AuditTrail
    signatures: SignatureRegister
    release: ReleaseService
    config_path: str
    clock: Clock

    def batch_report(
        self, actor: str, batch_id: str, out: Path, signatures: list[dict[str, object]]
    ) -> str:
        """Render the batch EM report (PDF) to ``out``; returns its SHA-256."""
        from gmp_edge.review.report import render_pdf  # reportlab: only when asked

        render_pdf(self.release.review(batch_id), out, signatures)
        digest = file_sha256(out)
        self.trail.append(
            actor, "batch.report_exported", "batch", batch_id, "", None, {"sha256": digest}
        )
        return digest

    def evidence_package(
        self, actor: str, batch_id: str, out: Path, with_review: bool = True
    ) -> PackageInfo:
        """Build and sign the batch's evidence package at ``out`` (``with_review``: the
        compiled review goes in too)."""
        e = self.engine
        review = self.release.review(batch_id).to_dict() if with_review else None
        try:
            info = build_package(
                out,
                store=e.store,
                trail=self.trail,
                books=e.books,
                signatures=self.signatures,
                cfg=e.cfg,
                config_path=self.config_path,
                batch_id=batch_id,
                review=review,
                key_path=key_path_for(e.cfg.store.path),
                now_us=self.clock.now_us(),
                check_store=verify_for_export,
            )
        except EvidenceError as exc:
            raise Conflict(f"no evidence package: {exc}") from None
        self.trail.append(
            actor,
            "batch.evidence_exported",
            "batch",
            batch_id,
            "",
            None,
            {
                "sha256": file_sha256(out),
                "key_fingerprint": info.key_fingerprint,
                "readings": info.readings,
            },
        )
        return info

    def batch_readings(self, actor: str, batch_id: str) -> ReadingsExport:
        """The batch's readings (its rooms and equipment, its window) on one snapshot:
        the same rows as ``readings.csv`` in the evidence package."""
        e = self.engine
        batch = e.books.batches.get(batch_id)
        if batch is None:
            raise NotFound(f"no batch {batch_id!r}")
        start, end = batch.start_us, period_end(batch, self.clock.now_us())
        rooms, equipment = set(batch.rooms), set(batch.equipment)
        conns = snapshot(e.store.path, 2)  # two readers on one snapshot, as the package
        tag_ids = {
            int(tid): str(p)
            for tid, p in conns[0].execute("select id, path from tags")
            if in_batch_scope(str(p), rooms, equipment)
        }
        self.trail.append(
            actor,
            "batch.readings_exported",
            "batch",
            batch_id,
            "",
            None,
            {"start": iso(start), "end": iso(end), "tags": len(tag_ids)},
        )
        return ReadingsExport(conns, tag_ids, start, end)

    def investigation_file(self, actor: str, dev_id: str, out: Path) -> str:
        """Render the deviation investigation file (PDF) to ``out``; returns its SHA-256."""
        from gmp_edge.review.investigation import gather_investigation, render_investigation_pdf

        e = self.engine
        try:
            f = gather_investigation(
                e.store, e.books, self.trail, e.cfg, self.signatures, dev_id, self.clock.now_us()
            )
        except KeyError:
            raise NotFound(f"no deviation {dev_id!r}") from None
        render_investigation_pdf(f, out)
        digest = file_sha256(out)
        self.trail.append(
            actor,
            "deviation.file_exported",
            "deviation",
            dev_id,
            "",
            None,
            {"sha256": digest, "version": f.deviation.version},
        )
        return digest
