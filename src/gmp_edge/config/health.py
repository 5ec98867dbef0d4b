"""When the service's own health stops being ok (the health route, ``/metrics``, the page)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gmp_edge.config.base import ConfigModel


class HealthConfig(ConfigModel):
    """Thresholds of the health verdict."""

    # a tag whose readings are Bad this many polls in a row makes health degraded
    bad_tag_polls: int = Field(default=3, ge=1, le=100_000)
    # "required": health is degraded while the operating system cannot say the clock is
    # synchronised; "not_reported": a validated time source the OS cannot report (a PTP
    # card, a GPS clock) keeps the clock from counting against health
    clock_check: Literal["required", "not_reported"] = "required"
    # a device that misses this many poll slots within a minute makes health degraded (each
    # missed poll is a recorded gap whatever this says; one late poll on a busy box is not
    # worth an operator's attention, a box that cannot keep up is)
    missed_polls: int = Field(default=3, ge=1, le=100_000)
