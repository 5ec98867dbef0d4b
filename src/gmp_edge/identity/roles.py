"""Roles and what each may do (pure): the table a validation engineer reads and tests."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """The roles of the plant's people and machines."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ENGINEER = "engineer"
    QA_REVIEWER = "qa_reviewer"
    QA_APPROVER = "qa_approver"  # certifies or releases
    INSPECTOR = "inspector"  # read-only, everything
    ADMINISTRATOR = "administrator"


class Permission(StrEnum):
    """Things a route or command can require."""

    READ_LIVE = "read_live"  # status, latest values, readings, gaps
    READ_AUDIT = "read_audit"  # the audit trail
    ACKNOWLEDGE = "acknowledge"  # alarms (issue 4)
    CONFIGURE = "configure"  # propose limit sets, change configuration
    REVIEW = "review"  # QA review of deviations and batches
    APPROVE = "approve"  # QA approval, release decisions
    MANAGE_USERS = "manage_users"  # users, roles, tokens


_READ = {Permission.READ_LIVE}
PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset(_READ),
    Role.OPERATOR: frozenset(_READ | {Permission.ACKNOWLEDGE}),
    Role.ENGINEER: frozenset(_READ | {Permission.ACKNOWLEDGE, Permission.CONFIGURE}),
    Role.QA_REVIEWER: frozenset(_READ | {Permission.READ_AUDIT, Permission.REVIEW}),
    Role.QA_APPROVER: frozenset(
        _READ | {Permission.READ_AUDIT, Permission.REVIEW, Permission.APPROVE}
    ),
    Role.INSPECTOR: frozenset(_READ | {Permission.READ_AUDIT}),
    # administrators run the system; they do not take GMP decisions (separation of duties)
    Role.ADMINISTRATOR: frozenset(_READ | {Permission.READ_AUDIT, Permission.MANAGE_USERS}),
}


def allowed(role: Role, permission: Permission) -> bool:
    """Whether ``role`` grants ``permission``."""
    return permission in PERMISSIONS[role]
