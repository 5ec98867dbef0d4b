"""Notifications for alarms, escalations and deviations.

The alarm and deviation services build :class:`Notification` values and hand them to a
:class:`Dispatcher`, which never blocks them and delivers to each sink (log, webhooks)
independently, counting sent, failed and dropped per sink for the health API.
"""

from __future__ import annotations

from gmp_edge.config import NotifyConfig, WebhookConfig
from gmp_edge.notify.dispatcher import Dispatcher, DrainReport, DropCallback
from gmp_edge.notify.model import (
    PRIORITIES,
    Notification,
    deviation_priority,
    priority_rank,
)
from gmp_edge.notify.setup import build_notifiers
from gmp_edge.notify.sinks import (
    KEY_HEADER,
    SIGNATURE_HEADER,
    DeliveryError,
    LogNotifier,
    Notifier,
    PriorityFilter,
    WebhookNotifier,
    sign,
    verify,
)

__all__ = [
    "KEY_HEADER",
    "PRIORITIES",
    "SIGNATURE_HEADER",
    "DeliveryError",
    "Dispatcher",
    "DrainReport",
    "DropCallback",
    "LogNotifier",
    "Notification",
    "Notifier",
    "NotifyConfig",
    "PriorityFilter",
    "WebhookConfig",
    "WebhookNotifier",
    "build_notifiers",
    "deviation_priority",
    "priority_rank",
    "sign",
    "verify",
]
