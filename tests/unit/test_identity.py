"""Users, passwords, lockout, roles and tokens — with their audit entries."""

import pytest

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.identity.passwords import (
    PasswordRuleError,
    check_rules,
    hash_password,
    verify_password,
)
from gmp_edge.identity.roles import PERMISSIONS, Permission, Role, allowed
from gmp_edge.identity.users import DAY_US, Directory, IdentityError

GOOD_PW = "Granulat-2026!x"


@pytest.fixture
def directory(tmp_path):
    trail = AuditTrail(tmp_path / "s.db")
    d = Directory(tmp_path / "s.db", trail, max_failed_attempts=3, password_max_age_days=90)
    d.create_first_administrator("admin", "Ada Admin", GOOD_PW)
    yield d
    d.close()
    trail.close()


def actions(d, record_id=None):
    return [e.action for e in d.trail.entries(record_type=None, record_id=record_id)]


@pytest.mark.parametrize(
    ("user", "pw", "problem"),
    [
        ("jdoe", "Short1!", "at least 12"),
        ("jdoe", "alllowercaseletters", "three of"),
        ("jdoe", "Xjdoe-2026-abcd", "user id"),
        ("jdoe", "Smith-2026-abcd", "name"),
        ("jdoe", "Password1234", "harder to guess"),  # common, in the estimator's lists
        ("jdoe", " " * 11 + "A1", "other than spaces"),
        ("jdoe", "Tablet\tPress-2026", "control or invisible"),
        ("jdoe", "Tablet\u200dPress-2026", "control or invisible"),  # zero-width joiner
    ],
)
def test_password_rules(user, pw, problem):
    with pytest.raises(PasswordRuleError, match=problem):
        check_rules(user, pw, "John Smith")


def test_hash_is_argon2id_and_salted():
    a, b = hash_password(GOOD_PW), hash_password(GOOD_PW)
    assert a.startswith("$argon2id$") and a != b
    assert verify_password(a, GOOD_PW) and not verify_password(a, GOOD_PW + "x")
    assert not verify_password("not a hash", GOOD_PW)


def test_role_table_separates_duties():
    assert allowed(Role.QA_APPROVER, Permission.APPROVE)
    assert not allowed(Role.ADMINISTRATOR, Permission.APPROVE)  # admins do not release batches
    assert not allowed(Role.QA_REVIEWER, Permission.APPROVE)
    assert PERMISSIONS[Role.INSPECTOR] == {Permission.READ_LIVE, Permission.READ_AUDIT}
    assert all(Permission.READ_LIVE in p for p in PERMISSIONS.values())


def test_first_administrator_only_once(directory):
    with pytest.raises(IdentityError, match="users exist already"):
        directory.create_first_administrator("root2", "Rob Root", GOOD_PW)


@pytest.mark.parametrize(
    ("uid", "name", "pw", "reason", "error"),
    [
        ("Bad Id", "Bea Bad", GOOD_PW, "r", "user id"),
        ("bea", "", GOOD_PW, "r", "printed name"),
        ("bea", "Bea Bad", "weak", "r", "at least 12"),
        ("bea", "Bea Bad", GOOD_PW, " ", "say why"),
        ("admin", "Ada Again", GOOD_PW, "r", "exists already"),
    ],
)
def test_create_user_refusals_change_nothing(directory, uid, name, pw, reason, error):
    before = len(directory.trail.entries())
    with pytest.raises(IdentityError, match=error):
        directory.create_user("admin", uid, name, Role.OPERATOR, pw, reason)
    assert len(directory.trail.entries()) == before
    assert [u.id for u in directory.users()] == ["admin"]


def test_sign_in_lockout_and_unlock(directory):
    directory.create_user("admin", "olga", "Olga Operator", Role.OPERATOR, GOOD_PW, "new shift")
    assert directory.authenticate("olga", GOOD_PW).ok
    for _ in range(2):
        r = directory.authenticate("olga", "wrong")
        assert not r.ok and r.reason == "wrong user id or password"
    r = directory.authenticate("olga", "wrong")  # third failure locks
    assert not r.ok and "locked" in r.reason
    assert not directory.authenticate("olga", GOOD_PW).ok  # right password, still locked
    assert directory.get("olga").locked
    directory.unlock("admin", "olga", "identity confirmed by phone")
    assert directory.authenticate("olga", GOOD_PW).ok
    trail = actions(directory, "olga")
    assert trail.count("signin.failed") == 4
    assert "user.locked" in trail and "user.unlocked" in trail
    assert not any(GOOD_PW in str(e) for e in directory.trail.entries())


def test_unknown_user_is_audited_but_not_revealed(directory):
    r = directory.authenticate("nobody", "x")
    assert not r.ok and r.reason == "wrong user id or password"
    assert directory.trail.entries(record_id="nobody")[0].action == "signin.failed"


def test_password_expiry(directory):
    u = directory.get("admin")
    r = directory.authenticate("admin", GOOD_PW, now=u.password_changed_us + 91 * DAY_US)
    assert r.ok and r.password_expired


def test_role_change_is_audited_and_not_for_oneself(directory):
    directory.create_user("admin", "erik", "Erik Engineer", Role.ENGINEER, GOOD_PW, "hired")
    directory.change_role("admin", "erik", Role.QA_REVIEWER, "moved to QA")
    (entry,) = [
        e for e in directory.trail.entries(record_id="erik") if e.action == "user.role_changed"
    ]
    assert (entry.old, entry.new, entry.actor) == (
        {"role": "engineer"},
        {"role": "qa_reviewer"},
        "admin",
    )
    with pytest.raises(IdentityError, match="own role"):
        directory.change_role("admin", "admin", Role.QA_APPROVER, "promotion")


def test_deactivated_user_cannot_sign_in(directory):
    directory.create_user("admin", "vera", "Vera Viewer", Role.VIEWER, GOOD_PW, "auditor")
    directory.set_active("admin", "vera", False, "left the company")
    assert not directory.authenticate("vera", GOOD_PW).ok
    assert directory.get("vera").active is False  # kept, never deleted


def test_tokens(directory):
    token = directory.create_token("admin", "grafana", Role.VIEWER, "dashboards")
    assert token.startswith("gmpe_") and len(token) > 40
    assert directory.token_role(token) == ("grafana", Role.VIEWER)
    assert directory.token_role(token + "x") is None
    directory.revoke_token("admin", "grafana", "rotated")
    assert directory.token_role(token) is None
    with pytest.raises(IdentityError, match="no active token"):
        directory.revoke_token("admin", "grafana", "again")
    assert not any(token in str(e) for e in directory.trail.entries())


def test_password_change_rules(directory):
    with pytest.raises(IdentityError, match="at least 12"):
        directory.set_password("admin", "admin", "short")
    directory.set_password("admin", "admin", "Another-Strong-2027")
    assert directory.authenticate("admin", "Another-Strong-2027").ok
    assert directory.trail.verify()[2] is None


def test_lockout_expires_after_lockout_minutes_and_is_audited(directory):
    directory.lockout_minutes = 30
    directory.create_user("admin", "olga", "Olga Operator", Role.OPERATOR, GOOD_PW, "new shift")
    t0 = directory.get("olga").password_changed_us  # any time; the lockout starts at t0
    for _ in range(3):
        r = directory.authenticate("olga", "wrong", now=t0)
    assert "try again in 30 min" in r.reason
    assert not directory.authenticate("olga", GOOD_PW, now=t0 + 29 * 60_000_000).ok
    assert directory.authenticate("olga", GOOD_PW, now=t0 + 30 * 60_000_000).ok
    (lifted,) = [
        e for e in directory.trail.entries(record_id="olga") if e.action == "user.unlocked"
    ]
    assert lifted.actor == "system:gmp-edge" and "30 min" in lifted.reason
    directory.lockout_minutes = None  # only somebody lifts it then
    for _ in range(3):
        directory.authenticate("olga", "wrong", now=t0)
    r = directory.authenticate("olga", GOOD_PW, now=t0 + 10**12)
    assert not r.ok and r.reason.endswith("ask an administrator")


def test_a_password_change_returns_a_new_credential_stamp(directory):
    before = directory.credential_stamp("admin")
    after = directory.set_password("admin", "admin", "Another-Strong-2027")
    assert before and after != before and directory.credential_stamp("admin") == after
    assert directory.credential_stamp("nobody") is None
