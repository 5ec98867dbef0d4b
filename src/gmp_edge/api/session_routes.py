"""Signing in and out, and changing one's own password."""

from __future__ import annotations

import threading

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from starlette.applications import Starlette

from gmp_edge.api.models import AUTH, BAD_REQUEST, ErrorOut, Password, Strict, UserId
from gmp_edge.api.refusals import SignInRefusals
from gmp_edge.api.security import (
    COOKIE,
    Access,
    Principal,
    access_of,
    is_background,
    require,
    require_person,
)
from gmp_edge.clock import now_us
from gmp_edge.identity.roles import PERMISSIONS, Role
from gmp_edge.identity.users import IdentityError
from gmp_edge.timefmt import iso

router = APIRouter(tags=["session"])
# any signed-in caller, even one whose password has expired (so they can change it)
ANY_PERSON = Depends(require(None, allow_expired_password=True))
_REFUSALS_MADE = threading.Lock()  # two first sign-ins at once must not make two tallies


def signin_refusals(app: Starlette) -> SignInRefusals:
    """The app's aggregate audit of refused sign-ins, made on first use from its
    :class:`Access` (the per-client limiter's window: the tallies are per client too)."""
    with _REFUSALS_MADE:
        found: SignInRefusals | None = getattr(app.state, "signin_refusals", None)
        if found is None:
            access: Access = app.state.access
            found = SignInRefusals(access.trail, access.signin_per_client.window_s)
            app.state.signin_refusals = found
        return found


def flush_signin_refusals(app: Starlette) -> int:
    """Write the pending summaries of refused sign-ins (call at shutdown, before the audit
    trail closes); how many entries were written."""
    found: SignInRefusals | None = getattr(app.state, "signin_refusals", None)
    return found.flush() if found is not None else 0


class SignInIn(Strict):
    """Credentials of a person."""

    user_id: str = UserId
    password: str = Password


class SessionOut(Strict):
    """The signed-in person, with the CSRF token the page sends on every write."""

    user_id: str
    full_name: str
    role: Role
    permissions: list[str]
    csrf_token: str
    password_expired: bool
    idle_timeout_s: float
    signed_in: str


class PasswordChangeIn(Strict):
    """A person's own password change."""

    current_password: str = Password
    new_password: str = Password


@router.post(
    "/api/session",
    response_model=SessionOut,
    responses={
        401: {"model": ErrorOut, "description": "wrong user id or password, locked"},
        429: {"model": ErrorOut, "description": "too many attempts; see Retry-After"},
    },
)
def sign_in(body: SignInIn, request: Request, response: Response) -> SessionOut:
    """Sign in with user id and password; sets the session cookie (HttpOnly, SameSite)."""
    access = access_of(request)
    refusals = signin_refusals(request.app)
    client = request.client.host if request.client else "unknown"
    # both limits count the attempt (each key's window sees every try made under it)
    wait = max(
        access.signin_per_client.retry_after_s(f"client:{client}"),
        access.signin_per_user.retry_after_s(f"user:{body.user_id}"),
    )
    if wait > 0:
        # audited per client and window, not per request: a burst must not fill the disk
        refusals.refused(client, body.user_id, wait)
        raise HTTPException(
            429,
            "too many sign-in attempts; wait and try again",
            {"Retry-After": str(max(1, round(wait)))},
        )
    refusals.close_if_over()  # an ended window's summaries go out without waiting for a 429
    result = access.directory.authenticate(body.user_id, body.password)
    if not result.ok or result.user is None:
        raise HTTPException(401, result.reason)
    user = result.user
    sid, s = access.sessions.open(
        user.id,
        user.full_name,
        user.role,
        now_us(),
        result.password_expired,
        access.directory.credential_stamp(user.id) or "",
    )
    response.set_cookie(
        COOKIE,
        sid,
        httponly=True,
        samesite="strict",
        secure=access.cookie_secure,
        path="/",
        max_age=int(access.sessions.max_us / 1_000_000),
    )
    return _out(s.user_id, s.full_name, s.role, s.csrf, s.password_expired, s.created_us, access)


def _out(
    uid: str, name: str, role: Role, csrf: str, expired: bool, created: int, access: Access
) -> SessionOut:
    return SessionOut(
        user_id=uid,
        full_name=name,
        role=role,
        permissions=sorted(p.value for p in PERMISSIONS[role]),
        csrf_token=csrf,
        password_expired=expired,
        idle_timeout_s=access.sessions.idle_us / 1_000_000,
        signed_in=iso(created) or "",
    )


def _person_access(who: Principal, request: Request) -> Access:
    """The app's :class:`Access`, for a route only a person (not a token) may call."""
    require_person(who, request)
    return access_of(request)


@router.get("/api/session", response_model=SessionOut, responses=AUTH)
def whoami(request: Request, who: Principal = ANY_PERSON) -> SessionOut:
    """The signed-in person (the page uses it to fetch its CSRF token)."""
    access = _person_access(who, request)
    s = access.sessions.get(
        request.cookies.get(COOKIE, ""), now_us(), touch=not is_background(request)
    )
    if s is None:  # pragma: no cover - require() has just found it
        raise HTTPException(401, "session expired")
    return _out(s.user_id, s.full_name, s.role, s.csrf, s.password_expired, s.created_us, access)


@router.delete("/api/session", status_code=204, responses=AUTH)
def sign_out(request: Request, response: Response, who: Principal = ANY_PERSON) -> None:
    """End the session."""
    access = _person_access(who, request)
    access.sessions.close(request.cookies.get(COOKIE, ""))
    access.trail.append(who.actor, "signout", "user", who.id, "")
    response.delete_cookie(COOKIE, path="/")


@router.post("/api/session/password", status_code=204, responses={**AUTH, **BAD_REQUEST})
def change_own_password(
    body: PasswordChangeIn, request: Request, who: Principal = ANY_PERSON
) -> None:
    """Change one's own password (the current one is asked again). The person's other
    sessions end: whoever else held one (a browser left signed in elsewhere, a stolen
    cookie) must sign in with the new password."""
    access = _person_access(who, request)
    check = access.directory.authenticate(who.id, body.current_password, purpose="password")
    if not check.ok:
        raise HTTPException(401, check.reason)
    own = request.cookies.get(COOKIE, "")
    try:
        stamp = access.directory.set_password(who.id, who.id, body.new_password)
    except IdentityError as exc:
        raise HTTPException(400, str(exc)) from None
    access.sessions.password_changed(own, stamp)  # first: this session stays valid
    ended = access.sessions.close_user(who.id, keep=own)
    if ended:
        access.trail.append(
            who.actor,
            "sessions.ended",
            "user",
            who.id,
            f"password changed: {ended} other session(s) of this person ended",
        )
