"""The API over a fresh store, as the security and workflow tests build it.

A real SQLite store, audit trail and FastAPI app (``build_api``), an administrator, and
clients that sign in as people (session cookie and CSRF token) or carry a machine token.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.edge.api_wiring import build_api
from gmp_edge.edge.service import EdgeService
from gmp_edge.historian.store import Store
from gmp_edge.identity.roles import Role
from tests.unit.conftest import PlantBuilder, small_plant

with warnings.catch_warnings():  # starlette asks for httpx2, which is not on PyPI for us yet
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ADMIN_PW = "Vault-Keeper-2026!"
PW = "People-Pass-2026!"


class ApiBox:
    """The app over a fresh store in ``tmp`` with the administrator ``admin``."""

    def __init__(self, tmp: Path, plant: PlantBuilder | None = None):
        self.cfg, sha = (plant or small_plant()).load(tmp)
        self.config = tmp / "plant.toml"
        self.db = self.cfg.store.path
        self.store = Store(self.db)
        self.trail = AuditTrail(self.db)
        self.service = EdgeService(self.cfg, sha, self.store)
        self.parts = build_api(self.cfg, self.service, self.trail)
        self.app = self.parts.app
        self.directory = self.parts.directory
        self.directory.create_first_administrator("admin", "Ada Admin", ADMIN_PW)

    def person(self, user_id: str, role: Role, password: str = PW) -> None:
        """Create a person who need not change the password first."""
        self.directory.create_user(
            "admin", user_id, f"Pat {user_id}", role, password, "test", must_change=False
        )

    def client(self, **kw: object) -> TestClient:
        """A client with no credentials."""
        return TestClient(self.app, base_url="http://127.0.0.1", **kw)  # type: ignore[arg-type]

    def signed_in(self, user_id: str, password: str = PW) -> TestClient:
        """A client signed in as ``user_id``, its writes carrying the CSRF token."""
        c = self.client()
        r = c.post("/api/session", json={"user_id": user_id, "password": password})
        assert r.status_code == 200, r.text
        c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
        return c

    def machine(self, token_id: str, role: Role) -> TestClient:
        """A client carrying a new machine token with ``role``."""
        token = self.directory.create_token("admin", token_id, role, "test")
        c = self.client()
        c.headers["Authorization"] = f"Bearer {token}"
        return c

    def close(self) -> None:
        """Close the app's, the trail's and the store's connections."""
        self.parts.close()
        self.trail.close()
        self.store.close()
