"""Users and machine tokens in the edge box's database; every change is audited.

Passwords are stored only as Argon2id hashes and never appear in the audit trail; the
hashes of the last few passwords are kept to refuse their reuse. Repeated failed sign-ins
lock the account (with an audit entry) for ``lockout_minutes``; the lockout is lifted, and
audited, at the first attempt after that, or earlier by an administrator (or on the edge
box's command line when no administrator can sign in) with a reason. A sign-in costs one
password verification whether the user id exists or not. Machines (Grafana, MES) get API
tokens with a role; only a SHA-256 of the token is stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.clock import now_us
from gmp_edge.errors import GmpEdgeError
from gmp_edge.identity.passwords import (
    PasswordRuleError,
    check_rules,
    dummy_hash,
    hash_password,
    verify_password,
)
from gmp_edge.identity.roles import Role
from gmp_edge.storage.schema import Schema, open_store

_SCHEMA = """
create table if not exists users(
    id text primary key,
    full_name text not null,
    role text not null,
    password_hash text not null,
    active integer not null default 1,
    created_us integer not null,
    created_by text not null,
    password_changed_us integer not null,
    failed_attempts integer not null default 0,
    locked_us integer
);
create table if not exists api_tokens(
    id text primary key,
    role text not null,
    token_sha256 text not null unique,
    created_us integer not null,
    created_by text not null,
    revoked_us integer
);
"""
# Migration 2: the hashes a password change replaced, newest kept, to refuse their reuse
_HISTORY = """
create table password_history(
    user_id text not null,
    password_hash text not null,
    replaced_us integer not null
);
create index password_history_user on password_history(user_id, replaced_us);
"""
SCHEMA = Schema("identity", (_SCHEMA, _HISTORY))
USER_ID = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")
DAY_US = 86_400 * 1_000_000
MINUTE_US = 60 * 1_000_000
LOCKED = "account locked after repeated failures"


def _stamp(password_hash: str) -> str:
    # a digest, so the sessions in memory never hold the hash itself
    return hashlib.sha256(password_hash.encode()).hexdigest()


class IdentityError(GmpEdgeError, ValueError):
    """A user or token operation was refused; the message says why."""


@dataclass(frozen=True, slots=True)
class User:
    """A person who signs in."""

    id: str
    full_name: str
    role: Role
    active: bool
    locked: bool
    failed_attempts: int
    password_changed_us: int


@dataclass(frozen=True, slots=True)
class SignIn:
    """The outcome of a sign-in attempt. ``user`` is set only when ``ok``."""

    ok: bool
    user: User | None
    reason: str
    password_expired: bool = False


class Directory:
    """Users and API tokens, stored beside the original record, audited."""

    def __init__(
        self,
        path: str | Path,
        trail: AuditTrail,
        max_failed_attempts: int = 5,
        password_max_age_days: int | None = 90,
        lockout_minutes: float | None = 30,
        password_history: int = 5,
    ):
        """``lockout_minutes`` None: a lockout lasts until somebody lifts it;
        ``password_history``: a new password may be none of the last that many (the
        current one included)."""
        self._conn = open_store(path, SCHEMA)
        self._lock = threading.Lock()
        self.trail = trail
        self.max_failed_attempts = max_failed_attempts
        self.password_max_age_days = password_max_age_days
        self.lockout_minutes = lockout_minutes
        self.password_history = max(1, password_history)
        dummy_hash()  # made now, so the first unknown user id is not answered slower

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    # -- reading -------------------------------------------------------------------

    def _user(self, user_id: str) -> User | None:
        row = self._conn.execute(
            "select id, full_name, role, active, locked_us, failed_attempts, password_changed_us"
            " from users where id=?",
            (user_id,),
        ).fetchone()
        if row is None:
            return None
        return User(row[0], row[1], Role(row[2]), bool(row[3]), row[4] is not None, row[5], row[6])

    def get(self, user_id: str) -> User:
        """The user, or IdentityError."""
        user = self._user(user_id)
        if user is None:
            raise IdentityError(f"no user {user_id!r}")
        return user

    def users(self) -> list[User]:
        """Every user, by id."""
        ids = [r[0] for r in self._conn.execute("select id from users order by id")]
        return [self.get(i) for i in ids]

    def has_users(self) -> bool:
        """Whether any user exists (the first administrator is created by the CLI)."""
        return self._conn.execute("select 1 from users limit 1").fetchone() is not None

    # -- changing ------------------------------------------------------------------

    def create_user(
        self,
        actor: str,
        user_id: str,
        full_name: str,
        role: Role,
        password: str,
        reason: str,
        must_change: bool = True,
    ) -> User:
        """Add a person. Refuses bad ids, duplicates and passwords that break the rules.

        With ``must_change`` (the default: an administrator chose the password) the user
        must set their own password at the first sign-in.
        """
        if not USER_ID.match(user_id):
            raise IdentityError(f"user id {user_id!r}: 2-32 of a-z 0-9 . _ -, starting a-z")
        if not full_name.strip():
            raise IdentityError("a user needs a printed name (it appears in signatures)")
        if not reason.strip():
            raise IdentityError("say why the user is created")
        try:
            check_rules(user_id, password, full_name)
        except PasswordRuleError as exc:
            raise IdentityError(str(exc)) from None
        now = now_us()
        digest = hash_password(password)  # slow on purpose: outside the transaction
        with self.trail.atomic() as tx:
            try:
                tx.conn.execute(
                    "insert into users(id, full_name, role, password_hash, created_us,"
                    " created_by, password_changed_us) values(?,?,?,?,?,?,?)",
                    (user_id, full_name, role.value, digest, now, actor, 0 if must_change else now),
                )
            except sqlite3.IntegrityError:
                raise IdentityError(f"user {user_id!r} exists already") from None
            tx.append(
                actor,
                "user.created",
                "user",
                user_id,
                reason,
                None,
                {"full_name": full_name, "role": role.value},
            )
        return self.get(user_id)

    def create_first_administrator(self, user_id: str, full_name: str, password: str) -> User:
        """The first administrator, from the command line; refused once any user exists."""
        if self.has_users():
            raise IdentityError("users exist already; an administrator creates further users")
        return self.create_user(
            "system:cli",
            user_id,
            full_name,
            Role.ADMINISTRATOR,
            password,
            "first administrator, created on the edge box's command line",
            must_change=False,
        )

    def change_role(self, actor: str, user_id: str, role: Role, reason: str) -> User:
        """Give a user another role (audited with old and new)."""
        user = self.get(user_id)
        if actor == user_id:
            raise IdentityError("nobody changes their own role")
        self._require_reason(reason)
        with self.trail.atomic() as tx:
            tx.conn.execute("update users set role=? where id=?", (role.value, user_id))
            tx.append(
                actor,
                "user.role_changed",
                "user",
                user_id,
                reason,
                {"role": user.role.value},
                {"role": role.value},
            )
        return self.get(user_id)

    def set_active(self, actor: str, user_id: str, active: bool, reason: str) -> User:
        """Deactivate (never delete: the record must stay attributable) or reactivate."""
        user = self.get(user_id)
        self._require_reason(reason)
        if actor == user_id and not active:
            raise IdentityError("nobody deactivates their own account")
        with self.trail.atomic() as tx:
            tx.conn.execute("update users set active=? where id=?", (int(active), user_id))
            tx.append(
                actor,
                "user.activated" if active else "user.deactivated",
                "user",
                user_id,
                reason,
                {"active": user.active},
                {"active": active},
            )
        return self.get(user_id)

    def unlock(self, actor: str, user_id: str, reason: str) -> User:
        """Lift a lockout after failed sign-ins."""
        self.get(user_id)
        self._require_reason(reason)
        with self.trail.atomic() as tx:
            tx.conn.execute(
                "update users set locked_us=null, failed_attempts=0 where id=?", (user_id,)
            )
            tx.append(actor, "user.unlocked", "user", user_id, reason)
        return self.get(user_id)

    def set_password(self, actor: str, user_id: str, new_password: str, reason: str = "") -> str:
        """Set a new password (rules apply, and it may be none of the last
        ``password_history`` passwords); the audit entry never holds the password.

        A password set by somebody else (an administrator's reset) must be changed by
        the user at the next sign-in; ``reason`` (a reset's) is audited as
        ``user.password_reset`` in the same transaction. Returns the new
        :meth:`credential_stamp`: every session opened with the old one ends at its next
        request, in whichever process it lives.
        """
        user = self.get(user_id)
        try:
            check_rules(user_id, new_password, user.full_name)
        except PasswordRuleError as exc:
            raise IdentityError(str(exc)) from None
        if any(verify_password(h, new_password) for h in self._recent_hashes(user_id)):
            n = self.password_history
            raise IdentityError(
                "password needs to differ from the current one"
                + (f" and the {n - 1} before it" if n > 1 else "")
            )
        digest = hash_password(new_password)  # slow on purpose: outside the transaction
        now = now_us()
        with self.trail.atomic() as tx:
            (replaced,) = tx.conn.execute(
                "select password_hash from users where id=?", (user_id,)
            ).fetchone()
            tx.conn.execute(
                "insert into password_history(user_id, password_hash, replaced_us) values(?,?,?)",
                (user_id, replaced, now),
            )
            # only the hashes the rule needs are kept: an old hash is no use but to a thief
            tx.conn.execute(
                "delete from password_history where user_id=? and rowid not in (select rowid"
                " from password_history where user_id=? order by replaced_us desc, rowid desc"
                " limit ?)",
                (user_id, user_id, self.password_history - 1),
            )
            tx.conn.execute(
                "update users set password_hash=?, password_changed_us=? where id=?",
                (digest, now if actor == user_id else 0, user_id),
            )
            if actor == user_id:
                who = "set by the user"
            elif actor.startswith("system:cli"):
                who = "set on the edge box's command line"
            else:
                who = "set by an administrator"
            tx.append(actor, "user.password_changed", "user", user_id, who)
            if reason.strip():
                tx.append(actor, "user.password_reset", "user", user_id, reason)
        return _stamp(digest)

    def credential_stamp(self, user_id: str) -> str | None:
        """What a session remembers of the account's credential: a digest of the password
        hash, or None when the account is unknown or deactivated. A session whose stamp
        differs has outlived a password change or reset (a rehash of the same password
        would end sessions too: none is made today)."""
        row = self._conn.execute(
            "select password_hash from users where id=? and active=1", (user_id,)
        ).fetchone()
        return None if row is None else _stamp(str(row[0]))

    def _recent_hashes(self, user_id: str) -> list[str]:
        # the current hash and the ones it replaced, newest first: password_history in all
        current = self._conn.execute(
            "select password_hash from users where id=?", (user_id,)
        ).fetchone()
        older = self._conn.execute(
            "select password_hash from password_history where user_id=?"
            " order by replaced_us desc, rowid desc limit ?",
            (user_id, self.password_history - 1),
        ).fetchall()
        return [str(r[0]) for r in ([current] if current else []) + older]

    @staticmethod
    def _require_reason(reason: str) -> None:
        if not reason.strip():
            raise IdentityError("a reason is required")

    # -- signing in ----------------------------------------------------------------

    def authenticate(
        self, user_id: str, password: str, now: int | None = None, purpose: str = "signin"
    ) -> SignIn:
        """Check a user id and password; failures are counted, audited and lock the account.

        The answer to the caller never says whether the user id exists, and neither does
        the time it takes: the password is verified, once, in every case (against a dummy
        hash of the same cost when the id is unknown). A lockout older than
        ``lockout_minutes`` is lifted (audited) first. ``purpose`` names the audit actions
        (``signin`` or ``signature``: a signature asks for the password again, and its
        failures count toward the same lockout).
        """
        now = now if now is not None else now_us()
        row = self._conn.execute(
            "select password_hash, locked_us from users where id=?", (user_id,)
        ).fetchone()
        user = self._user(user_id)
        matches = verify_password(row[0] if row is not None else dummy_hash(), password)
        if row is None or user is None:
            self.trail.append(
                f"unknown:{user_id}"[:64], f"{purpose}.failed", "user", user_id, "unknown user id"
            )
            return SignIn(False, None, "wrong user id or password")
        if not user.active:
            self.trail.append(user_id, f"{purpose}.failed", "user", user_id, "account deactivated")
            return SignIn(False, None, "wrong user id or password")
        if user.locked and not self._lockout_expired(user_id, int(row[1]), now):
            self.trail.append(user_id, f"{purpose}.failed", "user", user_id, "account locked")
            return SignIn(False, None, self._locked_message(int(row[1]), now))
        if not matches:
            with self.trail.atomic() as tx:
                # read the count inside the transaction: two wrong passwords at once count twice
                n = (
                    tx.conn.execute(
                        "select failed_attempts from users where id=?", (user_id,)
                    ).fetchone()[0]
                    + 1
                )
                locked = n >= self.max_failed_attempts
                tx.conn.execute(
                    "update users set failed_attempts=?, locked_us=? where id=?",
                    (n, now if locked else None, user_id),
                )
                tx.append(
                    user_id, f"{purpose}.failed", "user", user_id, f"wrong password (attempt {n})"
                )
                if locked:
                    tx.append(
                        "system:gmp-edge",
                        "user.locked",
                        "user",
                        user_id,
                        f"{n} failed sign-ins in a row",
                    )
            if locked:
                return SignIn(False, None, self._locked_message(now, now))
            return SignIn(False, None, "wrong user id or password")
        user = self.get(user_id)  # as it is now (a lockout may have just expired)
        expired = user.password_changed_us == 0 or (  # 0: set by an administrator
            self.password_max_age_days is not None
            and now - user.password_changed_us > self.password_max_age_days * DAY_US
        )
        with self.trail.atomic() as tx:
            tx.conn.execute("update users set failed_attempts=0 where id=?", (user_id,))
            if purpose == "signin":  # a signature's own entry records its success
                tx.append(
                    user_id,
                    "signin.succeeded",
                    "user",
                    user_id,
                    "password expired: must change it" if expired else "",
                )
        return SignIn(True, self.get(user_id), "ok", password_expired=expired)

    def _lockout_expired(self, user_id: str, locked_us: int, now: int) -> bool:
        # Lifts a lockout that has lasted lockout_minutes, audited; False while it lasts.
        if self.lockout_minutes is None or now - locked_us < self.lockout_minutes * MINUTE_US:
            return False
        with self.trail.atomic() as tx:
            # only the attempt that lifts it records it (two at once: one entry)
            n = tx.conn.execute(
                "update users set locked_us=null, failed_attempts=0 where id=? and locked_us=?",
                (user_id, locked_us),
            ).rowcount
            if n:
                tx.append(
                    "system:gmp-edge",
                    "user.unlocked",
                    "user",
                    user_id,
                    f"lockout expired after {self.lockout_minutes:g} min"
                    " ([security] lockout_minutes)",
                )
        return True

    def _locked_message(self, locked_us: int, now: int) -> str:
        if self.lockout_minutes is None:
            return f"{LOCKED}; ask an administrator"
        left_us = locked_us + self.lockout_minutes * MINUTE_US - now
        minutes = max(1, -(-int(left_us) // MINUTE_US))  # rounded up
        return f"{LOCKED}; try again in {minutes} min or ask an administrator"

    # -- machine tokens ------------------------------------------------------------

    def create_token(self, actor: str, token_id: str, role: Role, reason: str) -> str:
        """A new API token for a machine; the plain token is returned once, never stored."""
        if not USER_ID.match(token_id):
            raise IdentityError(f"token id {token_id!r}: 2-32 of a-z 0-9 . _ -, starting a-z")
        self._require_reason(reason)
        token = "gmpe_" + secrets.token_urlsafe(32)
        digest = hashlib.sha256(token.encode()).hexdigest()
        with self.trail.atomic() as tx:
            try:
                tx.conn.execute(
                    "insert into api_tokens(id, role, token_sha256, created_us, created_by)"
                    " values(?,?,?,?,?)",
                    (token_id, role.value, digest, now_us(), actor),
                )
            except sqlite3.IntegrityError:
                raise IdentityError(f"token {token_id!r} exists already") from None
            tx.append(
                actor, "token.created", "api_token", token_id, reason, None, {"role": role.value}
            )
        return token

    def revoke_token(self, actor: str, token_id: str, reason: str) -> None:
        """Revoke a machine token for good."""
        self._require_reason(reason)
        with self.trail.atomic() as tx:
            n = tx.conn.execute(
                "update api_tokens set revoked_us=? where id=? and revoked_us is null",
                (now_us(), token_id),
            ).rowcount
            if n == 0:
                raise IdentityError(f"no active token {token_id!r}")
            tx.append(actor, "token.revoked", "api_token", token_id, reason)

    def tokens(self) -> list[dict[str, object]]:
        """Every machine token (never the token itself), newest first."""
        rows = self._conn.execute(
            "select id, role, created_us, created_by, revoked_us from api_tokens"
            " order by created_us desc"
        ).fetchall()
        keys = ("id", "role", "created_us", "created_by", "revoked_us")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def token_role(self, token: str) -> tuple[str, Role] | None:
        """(token id, role) for a valid, unrevoked token; None otherwise."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        row = self._conn.execute(
            "select id, role from api_tokens where token_sha256=? and revoked_us is null",
            (digest,),
        ).fetchone()
        return None if row is None else (str(row[0]), Role(row[1]))
