"""Builds the API with its security parts (accounts, sessions, signatures) from the config."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from gmp_edge.api.app import create_app
from gmp_edge.api.ratelimit import RateLimiter
from gmp_edge.api.security import Access
from gmp_edge.api.session_routes import flush_signin_refusals
from gmp_edge.audit.review import AuditReviews
from gmp_edge.audit.trail import AuditTrail
from gmp_edge.clock import now_us
from gmp_edge.config import PlantConfig
from gmp_edge.edge.runtime import ServiceRuntime
from gmp_edge.edge.service import EdgeService
from gmp_edge.identity.roles import Role
from gmp_edge.identity.sessions import Sessions
from gmp_edge.identity.users import Directory
from gmp_edge.monitoring.approval import LimitSetRecords
from gmp_edge.monitoring.engine import Books, MonitoringEngine, Notify
from gmp_edge.notify import Dispatcher, Notification
from gmp_edge.notify.setup import build_notifiers
from gmp_edge.release.decisions import DecisionBook
from gmp_edge.services import GmpServices
from gmp_edge.signatures.register import SignatureRegister


@dataclass
class ApiParts:
    """The app, the monitoring engine it shows, and what must be closed when it stops."""

    app: FastAPI
    directory: Directory
    signatures: SignatureRegister
    reviews: AuditReviews
    engine: MonitoringEngine
    decisions: DecisionBook
    services: GmpServices

    def close(self) -> None:
        """Write what is pending in the audit (refused sign-ins' summaries), then close the
        database connections."""
        flush_signin_refusals(self.app)
        self.decisions.close()
        self.engine.books.close()
        self.reviews.close()
        self.signatures.close()
        self.directory.close()


def build_api(
    cfg: PlantConfig,
    service: EdgeService,
    trail: AuditTrail,
    notify: Notify | None = None,
    config_path: str = "",
    runtime: ServiceRuntime | None = None,
) -> ApiParts:
    """The FastAPI app over ``service`` with accounts, sessions, signatures and the
    monitoring engine (started: limits installed, state restored; run it as a task).
    ``runtime`` is the API's view of the service (default: :class:`ServiceRuntime`)."""
    directory = Directory(
        cfg.store.path,
        trail,
        max_failed_attempts=cfg.security.max_failed_signins,
        password_max_age_days=cfg.security.password_max_age_days,
        lockout_minutes=cfg.security.lockout_minutes,
        password_history=cfg.security.password_history,
    )
    access = Access(
        directory=directory,
        trail=trail,
        sessions=Sessions(cfg.api.session_idle_minutes * 60, cfg.api.session_max_hours * 3600),
        signin_per_client=RateLimiter(cfg.api.signin_attempts_per_minute_per_client, 60),
        signin_per_user=RateLimiter(cfg.api.signin_attempts_per_minute_per_user, 60),
        cookie_secure=cfg.api.tls,
    )
    signatures = SignatureRegister(trail)
    reviews = AuditReviews(trail)
    signatures.register(reviews)
    engine = MonitoringEngine(cfg, service.config_sha256, service.store, Books.open(trail), notify)
    engine.start()
    service.commit_listeners.append(engine.committed)
    signatures.register(engine.books.deviations)
    signatures.register(LimitSetRecords(engine))
    decisions = DecisionBook(trail)
    signatures.register(decisions)
    services = GmpServices.build(engine, trail, signatures, decisions, reviews, config_path)
    app = create_app(
        runtime or ServiceRuntime(service),
        access,
        services,
        tls=cfg.api.tls,
        live_max_age_s=cfg.api.live_max_age_s,
    )
    return ApiParts(app, directory, signatures, reviews, engine, decisions, services)


DEMO_ACCOUNTS = (
    ("demo.admin", "Demo Administrator", Role.ADMINISTRATOR),
    ("demo.engineer", "Demo Engineer", Role.ENGINEER),
    ("demo.operator", "Demo Operator", Role.OPERATOR),
    ("demo.reviewer", "Demo QA Reviewer", Role.QA_REVIEWER),
    ("demo.approver", "Demo QA Approver", Role.QA_APPROVER),
)


def demo_accounts(directory: Directory) -> list[tuple[str, str, str]]:
    """On an empty demo store: one account per main role with a random password.

    Returns (user id, role, password) to print once; nothing when users exist already
    (a demo store that was used before keeps its accounts and passwords).
    """
    if directory.has_users():
        return []
    made = []
    for uid, name, role in DEMO_ACCOUNTS:
        password = secrets.token_urlsafe(12) + "-Aa7"  # letters, digit, symbol: passes the rules
        directory.create_user(
            "system:demo",
            uid,
            name,
            role,
            password,
            "demo account on a simulated plant",
            must_change=False,
        )
        made.append((uid, role.value, password))
    return made


def notification_dispatcher(cfg: PlantConfig, trail: AuditTrail) -> Dispatcher:
    """The configured notification sinks behind one dispatcher; a dropped notification
    is audited (nothing is lost silently)."""

    def dropped(n: Notification, sink: str, reason: str) -> None:
        trail.append(
            "system:notify",
            "notification.dropped",
            n.record_type,
            n.record_id,
            f"{sink}: {reason}",
            None,
            {"kind": n.kind, "title": n.title},
        )

    return Dispatcher(
        build_notifiers(cfg.notify),
        queue_size=cfg.notify.queue_size,
        on_drop=dropped,
        drain_timeout_s=cfg.notify.drain_timeout_s,
    )


def notify_from_thread(dispatcher: Dispatcher) -> Notify:
    """The engine's notify callback: it runs in a worker thread, the dispatcher in the loop."""
    loop = asyncio.get_running_loop()

    def notify(
        kind: str,
        priority: str,
        title: str,
        text: str,
        record_type: str,
        record_id: str,
        data: dict[str, Any],
    ) -> None:
        n = Notification(kind, priority, title, text, record_type, record_id, now_us(), data)
        loop.call_soon_threadsafe(dispatcher.submit, n)

    return notify
