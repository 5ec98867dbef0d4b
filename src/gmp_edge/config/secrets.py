"""Secrets come from the environment, named by the configuration, never from the file."""

from __future__ import annotations

import os
from collections.abc import Mapping

from gmp_edge.errors import GmpEdgeError


class MissingSecret(GmpEdgeError, ValueError):
    """An environment variable the configuration names for a secret is unset or empty."""

    def __init__(self, name: str, what: str = ""):
        self.name = name
        self.what = what
        where = f"{what}: " if what else ""
        super().__init__(f"{where}environment variable {name} is not set (or is empty)")


def checked_env_name(value: str | None, key: str) -> str | None:
    """``value`` if it can name an environment variable; ValueError naming ``key`` if not.

    Catches the secret itself pasted where its variable's name belongs.
    """
    if value is not None and (not value or not value.replace("_", "a").isalnum()):
        raise ValueError(f"{key} must be an environment variable name, not the secret")
    return value


def secret_from_env(name: str, environ: Mapping[str, str] | None = None, what: str = "") -> str:
    """The value of environment variable ``name`` (``environ``, default ``os.environ``).

    Raises :class:`MissingSecret` naming the variable (and ``what``, the key that names
    it) when it is unset or empty: an empty password is a mistake, not a choice. Call it
    only when the configuration names a variable; an optional secret left out of the
    configuration is simply not looked up.
    """
    env = os.environ if environ is None else environ
    value = env.get(name)
    if not value:
        raise MissingSecret(name, what)
    return value
