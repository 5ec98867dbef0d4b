"""Password rules and Argon2id hashing.

A password is NFKC-normalised before it is checked, hashed or verified, so the same
characters typed on another keyboard or input method (a full-width digit, a ligature, a
composed or decomposed accent) are the same password. Control and invisible characters
are refused outright: they cannot be typed reliably, and a password made of them (or of
spaces) only looks long.

Strength is estimated with zxcvbn (``zxcvbn`` on PyPI, dwolfhub/zxcvbn-python, the Python
port of Dropbox's estimator): maintained, pure Python, no network, and its frequency lists
(the most common passwords of public leaks, English words, names, keyboard walks, dates,
repeats and sequences) are the common-password list, so no separate list is kept.
"""

from __future__ import annotations

import secrets
import threading
import unicodedata
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from zxcvbn import zxcvbn

from gmp_edge.errors import GmpEdgeError

MIN_LENGTH = 12
# zxcvbn's scale 0-4; 3 = "safely unguessable" (over 10^8 guesses for an online attacker,
# resistant to an offline attack on a slow hash such as Argon2id)
MIN_STRENGTH = 3
# zxcvbn refuses longer input (its matching grows fast with the length); a longer password is
# judged on its first 72 characters, which is never stronger than the whole
_ESTIMATE_MAX = 72
# Cc control (NUL, tab, newline), Cf format (zero-width space/joiner, bidi marks, soft
# hyphen), Zl/Zp line and paragraph separators: invisible or not typeable the same way twice
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
_hasher = PasswordHasher()  # Argon2id with the library's current recommended parameters
# zxcvbn keeps the user inputs in a module-level dictionary between calls: one at a time
_estimator_lock = threading.Lock()


class PasswordRuleError(GmpEdgeError, ValueError):
    """A new password breaks a rule; the message says which (never the password)."""


def normalise(password: str) -> str:
    """The password as it is checked, hashed and verified: Unicode NFKC."""
    return unicodedata.normalize("NFKC", password)


def strength(password: str, hints: list[str]) -> tuple[int, str]:
    """zxcvbn's score (0-4) of ``password`` and its warning (may be empty), with ``hints``
    (user id, name) counted as words an attacker knows."""
    with _estimator_lock:
        result = zxcvbn(normalise(password)[:_ESTIMATE_MAX], user_inputs=hints)
    return int(result["score"]), str(result["feedback"]["warning"] or "")


def check_rules(user_id: str, password: str, full_name: str = "") -> None:
    """Refuse weak passwords: length, character classes, control or invisible characters,
    mostly spaces, the user id or name inside, and a low estimated strength (common
    passwords, words, keyboard patterns). The message lists every rule broken."""
    pw = normalise(password)
    problems = []
    if any(unicodedata.category(c) in _REFUSED_CATEGORIES for c in pw):
        problems.append(
            "no control or invisible characters (such as NUL, tab, line breaks, zero-width spaces)"
        )
    if len(pw) < MIN_LENGTH:
        problems.append(f"at least {MIN_LENGTH} characters")
    visible = [c for c in pw if not c.isspace()]
    if pw and len(visible) * 2 <= len(pw):  # half or more spaces: only looks long
        problems.append("more than half of its characters to be other than spaces")
    classes = sum(
        (
            any(c.islower() for c in pw),
            any(c.isupper() for c in pw),
            any(c.isdigit() for c in pw),
            any(not c.isalnum() for c in pw),  # a space counts (passphrases)
        )
    )
    if classes < 3:
        problems.append("three of: lower case, upper case, digit, symbol")
    lowered = pw.lower()
    names = [user_id, *full_name.split()]
    if any(len(n) >= 3 and n.lower() in lowered for n in names):
        problems.append("to leave out the user id and name")
    if not problems:  # the estimate means something only for an otherwise valid password
        score, warning = strength(pw, [n for n in names if n])
        if score < MIN_STRENGTH:
            why = f" ({warning[:1].lower()}{warning[1:].rstrip('.')})" if warning else ""
            problems.append(
                f"to be harder to guess: rated {score} of 4 by the strength estimator,"
                f" at least {MIN_STRENGTH} needed{why}"
            )
    if problems:
        raise PasswordRuleError("password needs " + "; ".join(problems))


def hash_password(password: str) -> str:
    """Argon2id hash (with its salt and parameters) of the normalised password, to store."""
    return _hasher.hash(normalise(password))


def verify_password(stored_hash: str, password: str) -> bool:
    """True when ``password`` matches; never raises for a wrong password or a bad hash.

    The normalised form is tried first; a password hashed before normalisation existed
    (typed in another form) still matches as typed.
    """
    pw = normalise(password)
    if _verify(stored_hash, pw):
        return True
    return pw != password and _verify(stored_hash, password)


def _verify(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@cache
def dummy_hash() -> str:
    """A hash of a random secret, of the same scheme and cost as a real one: verified
    against when a user id is unknown, so the answer takes as long as for a known one."""
    return _hasher.hash(secrets.token_urlsafe(32))


def needs_rehash(stored_hash: str) -> bool:
    """The hash was made with weaker parameters than today's: rehash at next sign-in."""
    return _hasher.check_needs_rehash(stored_hash)
