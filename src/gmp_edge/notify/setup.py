"""From the notification configuration (``[notify]``) to the sinks that deliver."""

from __future__ import annotations

from collections.abc import Mapping

from gmp_edge.config import NotifyConfig, secret_from_env
from gmp_edge.notify.sinks import LogNotifier, Notifier, PriorityFilter, WebhookNotifier


def build_notifiers(cfg: NotifyConfig, environ: Mapping[str, str] | None = None) -> list[Notifier]:
    """Sinks for ``cfg``, each wrapped in a :class:`PriorityFilter`.

    Raises :class:`~gmp_edge.config.MissingSecret` (a ``ValueError``) when a webhook's
    ``secret_env`` is not set: a receiver that verifies signatures would reject every
    unsigned notification, so fail at start-up instead. ``environ``: where secrets are
    looked up (default ``os.environ``).
    """
    sinks: list[Notifier] = []
    if cfg.log:
        sinks.append(PriorityFilter(LogNotifier(), cfg.log_min_priority))
    for i, wh in enumerate(cfg.webhooks):
        secret: str | None = None
        if wh.secret_env is not None:
            secret = secret_from_env(wh.secret_env, environ, f"notify.webhooks[{i}].secret_env")
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
