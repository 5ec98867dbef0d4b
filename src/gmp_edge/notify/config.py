"""Configuration of notification sinks (to be embedded in the plant configuration)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gmp_edge.notify.sinks import LogNotifier, Notifier, PriorityFilter, WebhookNotifier

PriorityName = Literal["critical", "high", "medium", "low"]


class WebhookConfig(BaseModel):
    """One HTTP receiver of notifications (a chat bridge, a paging gateway, a MES endpoint)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and (not v or not v.replace("_", "a").isalnum()):
            raise ValueError("secret_env must be an environment variable name, not the secret")
        return v


class NotifyConfig(BaseModel):
    """Where notifications go: the log (all priorities by default) and webhooks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    log: bool = True
    log_min_priority: PriorityName = "low"
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    queue_size: int = Field(default=1000, ge=1, le=1_000_000)
    drain_timeout_s: float = Field(default=5.0, ge=0, le=300)


def build_notifiers(cfg: NotifyConfig, environ: Mapping[str, str] | None = None) -> list[Notifier]:
    """Sinks for ``cfg``, each wrapped in a :class:`PriorityFilter`.

    Raises ``ValueError`` when a webhook's ``secret_env`` is not set: a receiver that verifies
    signatures would reject every unsigned notification, so fail at start-up instead.
    """
    env = os.environ if environ is None else environ
    sinks: list[Notifier] = []
    if cfg.log:
        sinks.append(PriorityFilter(LogNotifier(), cfg.log_min_priority))
    for i, wh in enumerate(cfg.webhooks):
        secret: str | None = None
        if wh.secret_env is not None:
            secret = env.get(wh.secret_env)
            if not secret:
                raise ValueError(
                    f"webhooks[{i}]: environment variable {wh.secret_env} (HMAC secret) is not set"
                )
        notifier = WebhookNotifier(
            wh.url,
            timeout_s=wh.timeout_s,
            retries=wh.retries,
            backoff_s=wh.backoff_s,
            secret=secret,
            name=wh.name,
        )
        sinks.append(PriorityFilter(notifier, wh.min_priority))
    return sinks
