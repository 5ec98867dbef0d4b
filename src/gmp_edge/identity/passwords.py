"""Password rules and Argon2id hashing."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gmp_edge.errors import GmpEdgeError

MIN_LENGTH = 12
_hasher = PasswordHasher()  # Argon2id with the library's current recommended parameters


class PasswordRuleError(GmpEdgeError, ValueError):
    """A new password breaks a rule; the message says which."""


def check_rules(user_id: str, password: str, full_name: str = "") -> None:
    """Refuse weak passwords: length, character classes, no user id or name inside."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"at least {MIN_LENGTH} characters")
    classes = sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )
    if classes < 3:
        problems.append("three of: lower case, upper case, digit, symbol")
    lowered = password.lower()
    names = [user_id, *full_name.split()]
    if any(len(n) >= 3 and n.lower() in lowered for n in names):
        problems.append("to leave out the user id and name")
    if problems:
        raise PasswordRuleError("password needs " + "; ".join(problems))


def hash_password(password: str) -> str:
    """Argon2id hash (with its salt and parameters) to store."""
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """True when ``password`` matches; never raises for a wrong password or a bad hash."""
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """The hash was made with weaker parameters than today's: rehash at next sign-in."""
    return _hasher.check_needs_rehash(stored_hash)
