"""User and machine-token administration (administrators only; everything audited)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from pydantic import Field

from gmp_edge.api.models import AUTH, BAD_REQUEST, NOT_FOUND, Password, Reason, Strict, UserId
from gmp_edge.api.records import from_record
from gmp_edge.api.security import ADMIN, ADMIN_PERSON, Principal, access_of
from gmp_edge.identity.roles import Role
from gmp_edge.identity.users import IdentityError, User
from gmp_edge.timefmt import iso

router = APIRouter(tags=["users"], responses=AUTH)


class UserOut(Strict):
    """A person's account (never the password)."""

    id: str = Field(description="user id, as used to sign in and in the audit trail")
    full_name: str = Field(description="printed name, as shown in signature manifests")
    role: Role
    active: bool = Field(description="false once deactivated (accounts are never deleted)")
    locked: bool = Field(description="locked after too many failed sign-ins")
    failed_attempts: int = Field(description="failed sign-ins since the last success")
    must_change_password: bool
    password_changed: str | None


class UserIn(Strict):
    """A new person; the administrator's password must be changed at first sign-in."""

    user_id: str = UserId
    full_name: str
    role: Role
    password: str = Password
    reason: str = Reason


class UserChangeIn(Strict):
    """A change of role or active state."""

    role: Role | None = None
    active: bool | None = None
    reason: str = Reason


class ReasonIn(Strict):
    """Why."""

    reason: str = Reason


class PasswordResetIn(Strict):
    """A new password set by an administrator (to be changed at the next sign-in)."""

    new_password: str = Password
    reason: str = Reason


class TokenIn(Strict):
    """A new machine token."""

    token_id: str = UserId
    role: Role
    reason: str = Reason


class TokenOut(Strict):
    """A machine token's record."""

    id: str
    role: Role
    created: str
    created_by: str
    revoked: str | None


class NewTokenOut(TokenOut):
    """The token itself, shown this once and never stored."""

    token: str


def _user(u: User) -> UserOut:
    return from_record(
        UserOut,
        u,
        must_change_password=u.password_changed_us == 0,
        password_changed=iso(u.password_changed_us) if u.password_changed_us else None,
    )


def _refused(exc: IdentityError) -> HTTPException:
    return HTTPException(404 if str(exc).startswith("no ") else 400, str(exc))


@router.get("/api/users", response_model=list[UserOut])
def list_users(request: Request, who: Principal = ADMIN) -> list[UserOut]:
    """Every account, by id."""
    return [_user(u) for u in access_of(request).directory.users()]


@router.post("/api/users", response_model=UserOut, status_code=201, responses=BAD_REQUEST)
def create_user(body: UserIn, request: Request, who: Principal = ADMIN_PERSON) -> UserOut:
    """Create a person with a role."""
    try:
        u = access_of(request).directory.create_user(
            who.actor, body.user_id, body.full_name, body.role, body.password, body.reason
        )
    except IdentityError as exc:
        raise HTTPException(400, str(exc)) from None
    return _user(u)


@router.patch(
    "/api/users/{user_id}", response_model=UserOut, responses={**BAD_REQUEST, **NOT_FOUND}
)
def change_user(
    user_id: str, body: UserChangeIn, request: Request, who: Principal = ADMIN_PERSON
) -> UserOut:
    """Change a person's role or deactivate / reactivate them; their sessions end."""
    access = access_of(request)
    if body.role is None and body.active is None:
        raise HTTPException(400, "give role or active")
    try:
        u = access.directory.get(user_id)
        if body.role is not None and body.role != u.role:
            u = access.directory.change_role(who.actor, user_id, body.role, body.reason)
        if body.active is not None and body.active != u.active:
            u = access.directory.set_active(who.actor, user_id, body.active, body.reason)
    except IdentityError as exc:
        raise _refused(exc) from None
    access.sessions.close_user(user_id)
    return _user(u)


@router.post(
    "/api/users/{user_id}/unlock", response_model=UserOut, responses={**BAD_REQUEST, **NOT_FOUND}
)
def unlock_user(
    user_id: str, body: ReasonIn, request: Request, who: Principal = ADMIN_PERSON
) -> UserOut:
    """Lift a lockout after repeated failed sign-ins (audited with the reason)."""
    try:
        return _user(access_of(request).directory.unlock(who.actor, user_id, body.reason))
    except IdentityError as exc:
        raise _refused(exc) from None


@router.post(
    "/api/users/{user_id}/password", status_code=204, responses={**BAD_REQUEST, **NOT_FOUND}
)
def reset_password(
    user_id: str, body: PasswordResetIn, request: Request, who: Principal = ADMIN_PERSON
) -> None:
    """Set a temporary password; the person must change it at the next sign-in, and every
    session of theirs ends now."""
    access = access_of(request)
    if user_id == who.id:
        raise HTTPException(400, "change your own password with POST /api/session/password")
    try:
        access.directory.get(user_id)
        access.directory.set_password(who.actor, user_id, body.new_password, body.reason)
    except IdentityError as exc:
        raise _refused(exc) from None
    access.sessions.close_user(user_id)


def _token(t: dict[str, object]) -> TokenOut:
    revoked = t["revoked_us"]
    return TokenOut(
        id=str(t["id"]),
        role=Role(str(t["role"])),
        created=iso(int(str(t["created_us"]))) or "",
        created_by=str(t["created_by"]),
        revoked=iso(int(str(revoked))) if revoked else None,
    )


@router.get("/api/tokens", response_model=list[TokenOut])
def list_tokens(request: Request, who: Principal = ADMIN) -> list[TokenOut]:
    """Every machine token (the secret itself is never shown again)."""
    return [_token(t) for t in access_of(request).directory.tokens()]


@router.post("/api/tokens", response_model=NewTokenOut, status_code=201, responses=BAD_REQUEST)
def create_token(body: TokenIn, request: Request, who: Principal = ADMIN_PERSON) -> NewTokenOut:
    """Create a token for a machine (Grafana, MES) with a role; copy it now."""
    access = access_of(request)
    try:
        secret = access.directory.create_token(who.actor, body.token_id, body.role, body.reason)
    except IdentityError as exc:
        raise HTTPException(400, str(exc)) from None
    rec = next(t for t in access.directory.tokens() if t["id"] == body.token_id)
    return NewTokenOut(**_token(rec).model_dump(), token=secret)


@router.post(
    "/api/tokens/{token_id}/revoke", status_code=204, responses={**BAD_REQUEST, **NOT_FOUND}
)
def revoke_token(
    token_id: str, body: ReasonIn, request: Request, who: Principal = ADMIN_PERSON
) -> None:
    """Revoke a machine token for good."""
    try:
        access_of(request).directory.revoke_token(who.actor, token_id, body.reason)
    except IdentityError as exc:
        raise HTTPException(404, str(exc)) from None
