"""Where readings, alarm and deviation events are forwarded: InfluxDB 1.x or 2.x."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from gmp_edge.config.base import ConfigModel


class InfluxConfig(ConfigModel):
    """Where readings, alarm and deviation events are forwarded (InfluxDB 1.x or 2.x)."""

    version: Literal[1, 2] = 1
    url: str = Field(pattern=r"^https?://")
    database: str = "gmp_edge"  # 1.x, or a 2.x bucket's DBRP mapping for InfluxQL
    retention_policy: str | None = None
    username: str | None = None
    password_env: str | None = None  # name of the environment variable with the password
    org: str | None = None  # 2.x
    bucket: str | None = None  # 2.x
    token_env: str | None = None  # 2.x: name of the environment variable with the token
    batch_size: int = Field(default=5000, ge=1, le=100_000)
    flush_interval_s: float = Field(default=1.0, gt=0, le=60)
    gzip: bool = True
    events: bool = True  # also alarm transitions and deviation events

    @model_validator(mode="after")
    def _v2_needs(self) -> InfluxConfig:
        if self.version == 2 and not (self.org and self.bucket and self.token_env):
            raise ValueError("influxdb: version 2 needs org, bucket and token_env")
        return self
