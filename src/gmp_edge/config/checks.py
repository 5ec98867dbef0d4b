"""Checks of the schema that need domain knowledge, handed in by the loader.

The configuration package imports no other package of ours, yet some values are only
known to be good by the domain: a topic prefix by the MQTT link, the configured limits by
the limit model. The loader passes those checks as pydantic validation context
(:func:`validation_context`); a model validated without them skips them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gmp_edge.config.plant import PlantConfig

_KEY = "gmp_edge.config.checks"


@dataclass(frozen=True, slots=True)
class DomainChecks:
    """``topic_prefix``: raises ``ValueError`` for an unusable MQTT topic prefix template.
    ``limits``: the problems (each naming its key path) of a configuration's limits."""

    topic_prefix: Callable[[str], None] | None = None
    limits: Callable[[PlantConfig], list[str]] | None = None


NO_CHECKS = DomainChecks()


def validation_context(checks: DomainChecks) -> dict[str, Any]:
    """The ``context=`` to validate a configuration with these checks."""
    return {_KEY: checks}


def checks_in(context: Any) -> DomainChecks:
    """The checks in a validation context (none when it holds none)."""
    if isinstance(context, Mapping):
        found = context.get(_KEY)
        if isinstance(found, DomainChecks):
            return found
    return NO_CHECKS
