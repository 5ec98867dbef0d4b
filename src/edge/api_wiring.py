"""Builds the API with its security parts (accounts, sessions, signatures) from the config."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from fastapi import FastAPI

from api.app import create_app
from api.ratelimit import RateLimiter
from api.security import Access
from audit.review import AuditReviews
from audit.trail import AuditTrail
from edge.config import PlantConfig
from edge.runtime import ServiceRuntime
from edge.service import EdgeService
from identity.roles import Role
from identity.sessions import Sessions
from identity.users import Directory
from signatures.register import SignatureRegister


@dataclass
class ApiParts:
    """The app and what must be closed when it stops."""

    app: FastAPI
    directory: Directory
    signatures: SignatureRegister
    reviews: AuditReviews

    def close(self) -> None:
        """Close the database connections."""
        self.reviews.close()
        self.signatures.close()
        self.directory.close()


def build_api(cfg: PlantConfig, service: EdgeService, trail: AuditTrail) -> ApiParts:
    """The FastAPI app over ``service`` with accounts, sessions and signatures."""
    directory = Directory(
        cfg.store.path, trail, max_failed_attempts=cfg.security.max_failed_signins,
        password_max_age_days=cfg.security.password_max_age_days,
    )  # fmt: skip
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
    app = create_app(ServiceRuntime(service), access, signatures, reviews, tls=cfg.api.tls)
    return ApiParts(app, directory, signatures, reviews)


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
        directory.create_user("system:demo", uid, name, role, password,
                              "demo account on a simulated plant", must_change=False)  # fmt: skip
        made.append((uid, role.value, password))
    return made
