"""Who is calling, and may they: bearer tokens for machines, sessions for people.

Every route declares what it needs with ``Depends(require(permission))`` (the shared
ones below: ``READ``, ``ACK``, ``APPROVE`` ...); the role
matrix test walks every route against every role using the ``permission`` attribute
the dependency carries. Writes made with a session cookie must also send the
session's CSRF token in ``X-CSRF-Token``. Refused writes are audited. A read that the
page makes on its own (the live page's refresh every 2 s) sends ``X-Background-Refresh: 1``
and does not count as activity for the session's idle timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from gmp_edge.api.ratelimit import RateLimiter
from gmp_edge.audit.trail import AuditTrail
from gmp_edge.clock import now_us
from gmp_edge.identity.roles import Permission, Role, allowed
from gmp_edge.identity.sessions import Sessions
from gmp_edge.identity.users import Directory, User
from gmp_edge.services import GmpServices

COOKIE = "gmpe_session"
CSRF_HEADER = "X-CSRF-Token"
BACKGROUND_HEADER = "X-Background-Refresh"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearerToken",
    description="API token for a machine (Grafana, MES), created by an administrator: "
    "`Authorization: Bearer gmpe_...`. The token's role decides what it may do.",
)
cookie_scheme = APIKeyCookie(
    name=COOKIE,
    auto_error=False,
    scheme_name="sessionCookie",
    description="Session of a person, set by `POST /api/session`. Writes also need the "
    "session's CSRF token in the `X-CSRF-Token` header.",
)


class Principal(BaseModel):
    """The authenticated caller."""

    id: str
    name: str
    role: Role
    kind: Literal["person", "machine"]
    password_expired: bool = False

    @property
    def actor(self) -> str:
        """How the caller appears in the audit trail."""
        return self.id if self.kind == "person" else f"token:{self.id}"


@dataclass
class Access:
    """Everything the API needs to authenticate and authorise callers."""

    directory: Directory
    trail: AuditTrail
    sessions: Sessions
    signin_per_client: RateLimiter
    signin_per_user: RateLimiter
    cookie_secure: bool = False

    def principal(
        self,
        request: Request,
        token: HTTPAuthorizationCredentials | None,
        session_id: str | None,
    ) -> Principal:
        """Authenticate the request (401 when nobody or an unknown/expired credential)."""
        if token is not None:
            found = self.directory.token_role(token.credentials)
            if found is None:
                raise HTTPException(
                    401, "unknown or revoked API token", {"WWW-Authenticate": "Bearer"}
                )
            return Principal(id=found[0], name=found[0], role=found[1], kind="machine")
        if session_id:
            s = self.sessions.get(session_id, now_us(), touch=not is_background(request))
            if s is None:
                raise HTTPException(
                    401,
                    "session expired or signed out; sign in again",
                    {"WWW-Authenticate": "Bearer"},
                )
            if self.directory.credential_stamp(s.user_id) != s.stamp:
                # the password was changed or reset since the session began (perhaps on
                # the box's command line, in another process), or the account deactivated
                self.sessions.close(session_id)
                raise HTTPException(
                    401,
                    "the password of this account changed since you signed in; sign in again",
                    {"WWW-Authenticate": "Bearer"},
                )
            if request.method not in SAFE_METHODS and request.headers.get(CSRF_HEADER) != s.csrf:
                raise HTTPException(403, f"missing or wrong {CSRF_HEADER} header for this session")
            return Principal(
                id=s.user_id,
                name=s.full_name,
                role=s.role,
                kind="person",
                password_expired=s.password_expired,
            )
        raise HTTPException(
            401,
            "sign in (POST /api/session) or send an API token",
            {"WWW-Authenticate": "Bearer"},
        )

    def refuse(self, request: Request, who: Principal, why: str) -> HTTPException:
        """A 403, audited when the refused request would have changed something."""
        if request.method not in SAFE_METHODS:
            self.trail.append(
                who.actor,
                "access.denied",
                "api",
                request.url.path,
                why,
                None,
                {"method": request.method, "role": who.role.value},
            )
        return HTTPException(403, why)


def require(
    permission: Permission | None, allow_expired_password: bool = False, person: bool = False
) -> Callable[..., Principal]:
    """A dependency that authenticates and checks ``permission`` (None: any caller);
    with ``person`` a machine token is refused whatever its role."""

    def dependency(
        request: Request,
        token: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
        session_id: str | None = Depends(cookie_scheme),
    ) -> Principal:
        access: Access = request.app.state.access
        who = access.principal(request, token, session_id)
        if who.password_expired and not allow_expired_password:
            raise HTTPException(
                403, "your password has expired; change it first (POST /api/session/password)"
            )
        if permission is not None and not allowed(who.role, permission):
            raise access.refuse(
                request, who, f"role {who.role.value} lacks permission {permission.value}"
            )
        if person:
            require_person(who, request)
        return who

    dependency.permission = permission  # type: ignore[attr-defined]
    return dependency


# What the routes declare, one shared dependency per permission (``who: Principal = READ``)
READ = Depends(require(Permission.READ_LIVE))
READ_AUDIT = Depends(require(Permission.READ_AUDIT))
ACK = Depends(require(Permission.ACKNOWLEDGE))
CONFIGURE = Depends(require(Permission.CONFIGURE))
REVIEW = Depends(require(Permission.REVIEW))
APPROVE = Depends(require(Permission.APPROVE))
ADMIN = Depends(require(Permission.MANAGE_USERS))
# people, roles and tokens are changed by a signed-in person only: a leaked administrator
# token must not mint a QA approver with a password it knows (separation of duties)
ADMIN_PERSON = Depends(require(Permission.MANAGE_USERS, person=True))
SIGNED_IN = Depends(require(None))


def is_background(request: Request) -> bool:
    """A read the page made by itself (``X-Background-Refresh: 1``), not the person: it
    leaves the session's idle time running. A write always counts as the person's."""
    return request.method in SAFE_METHODS and request.headers.get(BACKGROUND_HEADER) == "1"


def access_of(request: Request) -> Access:
    """The app's :class:`Access`."""
    access: Access = request.app.state.access
    return access


def services_of(request: Request) -> GmpServices:
    """The app's GMP workflows (the only way routes change records)."""
    services: GmpServices = request.app.state.services
    return services


def require_person(who: Principal, request: Request) -> None:
    """Refuse machines where a person must act (signatures, own password)."""
    if who.kind != "person":
        access: Access = request.app.state.access
        raise access.refuse(request, who, "only a signed-in person can do this, not a token")


def reauthenticate(
    request: Request,
    who: Principal,
    user_id: str,
    password: str,
    record_type: str,
    record_id: str,
    refused: str,
) -> User:
    """The password asked again before a signature (21 CFR 11.200): the signer must be
    the signed-in person, and a wrong password counts toward the lockout. Attempts to
    sign as someone else are audited; ``refused`` starts the 401 message."""
    require_person(who, request)
    access = access_of(request)
    if user_id != who.id:
        access.trail.append(
            who.actor,
            "signature.refused",
            record_type,
            record_id,
            f"signing as {user_id} while signed in as {who.id}",
        )
        raise HTTPException(403, "you can only sign as yourself")
    check = access.directory.authenticate(user_id, password, purpose="signature")
    if not check.ok or check.user is None:
        raise HTTPException(401, f"{refused}: {check.reason}")
    return check.user
