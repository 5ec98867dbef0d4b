"""The service layer: every GMP workflow, one implementation for every entry point.

The API, the MQTT link (MES batch commands) and the CLI call these services and only
translate their own protocol; none of them assembles a workflow from the books itself.
A record and the signature that completes it are written in one transaction (see
``AuditTrail.atomic``). Refusals are :mod:`gmp_edge.services.errors`.
"""

from __future__ import annotations

from dataclasses import dataclass

from gmp_edge.audit.review import AuditReviews
from gmp_edge.audit.trail import AuditTrail
from gmp_edge.clock import SYSTEM_CLOCK, Clock
from gmp_edge.monitoring.engine import MonitoringEngine
from gmp_edge.release.decisions import DecisionBook
from gmp_edge.services.alarms import AlarmService
from gmp_edge.services.audit_reviews import AuditReviewService
from gmp_edge.services.batches import BatchService
from gmp_edge.services.deviations import DeviationService
from gmp_edge.services.errors import Conflict, Invalid, NotFound, Refused, WorkflowError
from gmp_edge.services.exports import ExportService
from gmp_edge.services.history import HistoryService
from gmp_edge.services.limit_sets import LimitSetService
from gmp_edge.services.records import PlantRecords
from gmp_edge.services.release import ReleaseService
from gmp_edge.services.signing import SigningService
from gmp_edge.services.status import StatusService
from gmp_edge.signatures.register import SignatureRegister

__all__ = [
    "AlarmService",
    "AuditReviewService",
    "BatchService",
    "Conflict",
    "DeviationService",
    "ExportService",
    "GmpServices",
    "HistoryService",
    "Invalid",
    "LimitSetService",
    "NotFound",
    "Refused",
    "ReleaseService",
    "SigningService",
    "StatusService",
    "WorkflowError",
]


@dataclass(frozen=True)
class GmpServices:
    """The workflows of one edge box, over its books, signatures and monitoring engine."""

    batches: BatchService
    alarms: AlarmService
    deviations: DeviationService
    limit_sets: LimitSetService
    release: ReleaseService
    signing: SigningService
    exports: ExportService
    history: HistoryService
    status: StatusService
    audit_reviews: AuditReviewService

    @classmethod
    def build(
        cls,
        engine: MonitoringEngine,
        trail: AuditTrail,
        signatures: SignatureRegister,
        decisions: DecisionBook,
        reviews: AuditReviews,
        config_path: str = "",
        clock: Clock = SYSTEM_CLOCK,
    ) -> GmpServices:
        """The services over one store (``config_path``: the file the evidence package
        quotes)."""
        signing = SigningService(signatures, trail)
        release = ReleaseService(engine, trail, decisions, signing, clock)
        return cls(
            batches=BatchService(
                engine.books.batches,
                (r.id for r in engine.cfg.rooms),
                clock,
                {e.id for e in engine.cfg.equipment} | {t.segments[3] for t in engine.cfg.tags},
            ),
            alarms=AlarmService(engine, clock),
            deviations=DeviationService(
                engine.books.deviations, trail, signing, clock, engine.books.batches
            ),
            limit_sets=LimitSetService(engine, clock),
            release=release,
            signing=signing,
            exports=ExportService(engine, trail, signatures, release, config_path, clock),
            history=HistoryService(engine, clock),
            status=StatusService(engine),
            audit_reviews=AuditReviewService(reviews),
        )

    @staticmethod
    def exports_over(
        records: PlantRecords,
        trail: AuditTrail,
        signatures: SignatureRegister,
        decisions: DecisionBook,
        config_path: str,
        clock: Clock = SYSTEM_CLOCK,
    ) -> ExportService:
        """Exports of a store opened while the service is stopped (the CLI's)."""
        release = ReleaseService(
            records, trail, decisions, SigningService(signatures, trail), clock
        )
        return ExportService(records, trail, signatures, release, config_path, clock)
