"""The one root of every exception gmp_edge raises, and the refusals shared by the domain cores.

A caller that wants "anything of ours" catches :class:`GmpEdgeError`; a caller that wants one
kind catches that kind. Every exception class also keeps the builtin base its callers caught
before there was a root (``ValueError``, ``LookupError``, ``RuntimeError``, ...), so existing
``except`` clauses keep working. This module imports nothing of ours: every package may use it.
"""

from __future__ import annotations


class GmpEdgeError(Exception):
    """Base of every exception defined in gmp_edge."""


class IllegalTransition(GmpEdgeError, ValueError):
    """A record's state machine does not allow this event or action in its current state."""


class MissingFields(GmpEdgeError, ValueError):
    """An event or action needs inputs that are missing or blank; ``missing`` lists them all."""

    missing: tuple[str, ...] = ()
