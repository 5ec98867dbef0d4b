"""Where the API listens, how callers are let in, and the account rules."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, IPvAnyAddress, IPvAnyNetwork, model_validator

from gmp_edge.config.base import ConfigModel


class ApiConfig(ConfigModel):
    """Where the API and the status page listen, and how callers are let in."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    session_idle_minutes: float = Field(default=15, gt=0, le=24 * 60)
    session_max_hours: float = Field(default=12, gt=0, le=24 * 7)
    signin_attempts_per_minute_per_client: int = Field(default=20, ge=1, le=10_000)
    signin_attempts_per_minute_per_user: int = Field(default=5, ge=1, le=10_000)
    # reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (addresses or
    # networks); none: the headers are ignored, whoever sends them, loopback included
    trusted_proxies: list[IPvAnyAddress | IPvAnyNetwork] = Field(default_factory=list)
    # requests worked on at once (the rest wait their turn): every request thread competes
    # with collection, evaluation and commits for the one interpreter lock (ADR 0028)
    workers: int = Field(default=4, ge=1, le=64)
    # an answer of every tag's newest value (/api/latest, /api/status/rooms) is given again
    # to whoever asks within this long, instead of being made for each of them; 0: each
    live_max_age_s: float = Field(default=0.5, ge=0, le=10)

    @model_validator(mode="after")
    def _tls_pair(self) -> ApiConfig:
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("api: tls_certfile and tls_keyfile go together (give both or none)")
        return self

    @property
    def tls(self) -> bool:
        """Whether the API serves HTTPS."""
        return self.tls_certfile is not None


class SecurityConfig(ConfigModel):
    """Account rules (21 CFR 11.300)."""

    max_failed_signins: int = Field(default=5, ge=1, le=100)
    # a lockout ends by itself this long after it began (audited); an administrator, or
    # `gmp-edge users unlock` on the box, lifts it earlier
    lockout_minutes: float = Field(default=30, gt=0, le=7 * 24 * 60)
    password_max_age_days: int | None = Field(default=90, ge=1)
    # a new password may be none of the last this many (the current one included)
    password_history: int = Field(default=5, ge=1, le=24)
    audit_anchor_minutes: float = Field(default=5, gt=0, le=24 * 60)
    # the whole integrity check (gmp-edge verify) of the running store, in a child process
    integrity_check_minutes: float = Field(default=60, ge=1, le=7 * 24 * 60)
    # each check recomputes the readings sealed since the last one and this many older ones
    integrity_scrub_readings: int = Field(default=20_000_000, ge=1000)
