"""Where notifications of alarms, escalations and deviations go: the log and webhooks."""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator

from gmp_edge.config.base import ConfigModel, PriorityName
from gmp_edge.config.secrets import checked_env_name


class WebhookConfig(ConfigModel):
    """One HTTP receiver of notifications (a chat bridge, a paging gateway, a MES endpoint)."""

    url: str
    min_priority: PriorityName = "high"
    # Name of an environment variable holding the HMAC secret; the secret stays out of the file.
    secret_env: str | None = None
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    retries: int = Field(default=3, ge=0, le=10)
    backoff_s: float = Field(default=1.0, ge=0, le=60)
    name: str | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        rest = v.split("://", 1)[1] if "://" in v else ""
        if not v.startswith(("http://", "https://")) or not rest or rest[0] in "/?#":
            raise ValueError("url must start with http:// or https:// and name a host")
        return v

    @field_validator("secret_env")
    @classmethod
    def _env_name(cls, v: str | None, info: ValidationInfo) -> str | None:
        return checked_env_name(v, info.field_name or "")


class NotifyConfig(ConfigModel):
    """Where notifications go: the log (all priorities by default) and webhooks."""

    log: bool = True
    log_min_priority: PriorityName = "low"
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    queue_size: int = Field(default=1000, ge=1, le=1_000_000)
    drain_timeout_s: float = Field(default=5.0, ge=0, le=300)
