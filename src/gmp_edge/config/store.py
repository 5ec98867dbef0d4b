"""The local durable store (the original record) and the simulated plant."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from gmp_edge.config.base import ConfigModel


class StoreConfig(ConfigModel):
    """The local durable store (the original record)."""

    path: Path = Path("var/gmp-edge.db")
    commit_interval_s: float = Field(default=0.5, gt=0, le=1.0)
    retention_days: int | None = Field(default=None, ge=1)
    # readings are folded into per-minute review segments this often (ADR 0018); a review
    # reads what is not folded yet from the readings table, so this trades indexing work
    # against review speed, never completeness
    segment_index_interval_s: float = Field(default=30.0, gt=0, le=3600)
    # the store (with its forwarding backlog) may grow to this; at 80 % an alarm is raised
    disk_budget_mb: float | None = Field(default=None, gt=0)
    # free space on the store's file system below this raises a critical alarm (cleared
    # at 1.2x), while there is still room to record the alarm and act before commits fail
    min_free_disk_mb: float = Field(default=500.0, ge=0)


class SimulationConfig(ConfigModel):
    """The simulated plant `gmp-edge simulate` and `demo` start."""

    spec: Path
