"""What a GMP workflow answers when it refuses: one kind per reason, mapped to HTTP once.

The entry points (API, MQTT, CLI) translate these; none of them decides on its own what a
refusal means. Each keeps the builtin base its callers relied on before the service layer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from gmp_edge.errors import GmpEdgeError


class WorkflowError(GmpEdgeError):
    """A GMP workflow refused; nothing was written. The message says why."""

    def __init__(self, message: str, details: list[str] | None = None):
        super().__init__(message)
        self.details = details or []


class NotFound(WorkflowError, LookupError):
    """The record the workflow acts on does not exist."""


class Invalid(WorkflowError, ValueError):
    """The request itself is wrong (unknown room, bad id, a limit set that fails checks)."""


class Conflict(WorkflowError):
    """The record is not in a state that allows this, or changed since it was read."""


class Refused(WorkflowError, PermissionError):
    """The person may not do this (separation of duties, signature rules)."""


@contextmanager
def translated(refusals: Mapping[type[Exception], type[WorkflowError]]) -> Iterator[None]:
    """Re-raise a domain refusal as the workflow error ``refusals`` maps it to (the first
    entry it is an instance of, so list subclasses first), with the same message."""
    try:
        yield
    except tuple(refusals) as exc:
        kind = next(w for d, w in refusals.items() if isinstance(exc, d))
        raise kind(str(exc)) from None
