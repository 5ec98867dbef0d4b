"""Notification sinks: the log, HTTP webhooks, and a priority filter around any sink."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import httpx

from gmp_edge.errors import GmpEdgeError
from gmp_edge.notify.model import PRIORITIES, Notification, priority_rank
from gmp_edge.retry import Backoff

log = logging.getLogger("gmp_edge.notify")

SIGNATURE_HEADER = "X-GMP-Edge-Signature"
KEY_HEADER = "X-GMP-Edge-Notification-Key"

# 408 and 429 are 4xx but say "try again later", not "your request is wrong".
_RETRYABLE_4XX = frozenset({408, 429})


class DeliveryError(GmpEdgeError):
    """A sink gave up on a notification (after its retries, or on a non-retryable answer)."""


@runtime_checkable
class Notifier(Protocol):
    """A place notifications go. ``send`` returns when delivered and raises when it gave up."""

    @property
    def name(self) -> str:
        """Name used in counters, logs and the health API (no secrets in it)."""
        ...

    async def send(self, n: Notification) -> None:
        """Deliver one notification (raise :class:`DeliveryError` or any error on failure)."""
        ...


def sign(body: bytes, secret: str | bytes) -> str:
    """Signature header value for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str | bytes, header: str | None) -> bool:
    """Receiver side: does ``header`` carry the signature of ``body`` under ``secret``?"""
    return header is not None and hmac.compare_digest(sign(body, secret), header)


class LogNotifier:
    """Writes one structured line per notification to the ``gmp_edge.notify`` logger."""

    _LEVELS = {
        "critical": logging.ERROR,
        "high": logging.WARNING,
        "medium": logging.INFO,
        "low": logging.INFO,
    }

    def __init__(self, name: str = "log", logger: logging.Logger | None = None) -> None:
        self._name = name
        self._log = logger or log

    @property
    def name(self) -> str:
        """Sink name."""
        return self._name

    async def send(self, n: Notification) -> None:
        """Log the notification as one JSON line (level follows priority)."""
        self._log.log(
            self._LEVELS.get(n.priority, logging.ERROR),
            "notification %s",
            n.to_json(),
            extra={"notification": n.to_dict()},
        )


def _safe_url_name(url: str) -> str:
    # Never put userinfo or the query string (both may carry tokens) into names and logs.
    u = httpx.URL(url)
    port = f":{u.port}" if u.port else ""
    return f"webhook:{u.scheme}://{u.host}{port}{u.path}"


class WebhookNotifier:
    """POSTs each notification as JSON to ``url``.

    With ``secret``, adds ``X-GMP-Edge-Signature: sha256=<hex HMAC-SHA256 of the body>``.
    Connection errors, timeouts, 5xx, 408 and 429 are retried ``retries`` times (so at most
    ``1 + retries`` attempts) with exponential backoff from ``backoff_s``; other 4xx and 3xx
    are not retried. Delivery is at least once: receivers de-duplicate on the
    ``X-GMP-Edge-Notification-Key`` header (also ``key`` in the body).
    """

    def __init__(
        self,
        url: str,
        timeout_s: float = 5,
        retries: int = 3,
        backoff_s: float = 1.0,
        headers: Mapping[str, str] | None = None,
        secret: str | bytes | None = None,
        *,
        name: str | None = None,
        max_backoff_s: float = 30.0,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError("webhook url must start with http:// or https://")
        if retries < 0 or timeout_s <= 0 or backoff_s < 0:
            raise ValueError("retries and backoff_s must be >= 0 and timeout_s > 0")
        self.url = url
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self._headers = dict(headers or {})
        self._secret = secret
        self._name = name or _safe_url_name(url)
        self._client: httpx.AsyncClient | None = None

    @property
    def name(self) -> str:
        """Sink name (scheme, host, port and path of the URL; never query or credentials)."""
        return self._name

    def _get_client(self) -> httpx.AsyncClient:
        # Created lazily so it belongs to the event loop that sends.
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout_s), follow_redirects=False
            )
        return self._client

    def request_headers(self, n: Notification, body: bytes) -> dict[str, str]:
        """Headers for one delivery (configured headers first, ours override)."""
        h = dict(self._headers)
        h["Content-Type"] = "application/json; charset=utf-8"
        h[KEY_HEADER] = n.key
        if self._secret is not None:
            h[SIGNATURE_HEADER] = sign(body, self._secret)
        return h

    async def send(self, n: Notification) -> None:
        """POST the notification; retry transient failures; raise :class:`DeliveryError`."""
        body = n.to_json().encode("utf-8")
        headers = self.request_headers(n, body)
        client = self._get_client()
        last = ""
        backoff = Backoff(min(self.backoff_s, self.max_backoff_s), self.max_backoff_s)
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(backoff.next_delay())
            try:
                resp = await client.post(self.url, content=body, headers=headers)
            except (httpx.TransportError, OSError) as exc:
                # Connect errors, timeouts, resets: the receiver may be back soon.
                last = f"{type(exc).__name__}: {exc}".rstrip(": ")
            else:
                if 200 <= resp.status_code < 300:
                    return
                last = f"HTTP {resp.status_code}"
                if resp.status_code < 500 and resp.status_code not in _RETRYABLE_4XX:
                    # 4xx (and 3xx, which we do not follow with a signed body) will not get
                    # better.
                    raise DeliveryError(f"{last} (not retried)")
            log.warning(
                "%s: attempt %d/%d for %s failed: %s",
                self.name,
                attempt + 1,
                self.retries + 1,
                n.key,
                last,
            )
        raise DeliveryError(f"{last} after {self.retries + 1} attempts")

    async def aclose(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class PriorityFilter:
    """Passes to ``inner`` only notifications at or above ``min_priority``.

    The :class:`~notify.dispatcher.Dispatcher` asks :meth:`accepts` before queueing, so
    filtered notifications take no queue space and are counted as ``filtered``, not ``sent``.
    """

    def __init__(self, inner: Notifier, min_priority: str) -> None:
        if min_priority not in PRIORITIES:
            raise ValueError(f"min_priority {min_priority!r} is not one of {PRIORITIES}")
        self.inner = inner
        self.min_priority = min_priority
        self._min_rank = priority_rank(min_priority)

    @property
    def name(self) -> str:
        """The inner sink's name."""
        return self.inner.name

    def accepts(self, n: Notification) -> bool:
        """Whether ``n`` is urgent enough for this sink."""
        return priority_rank(n.priority) >= self._min_rank

    async def send(self, n: Notification) -> None:
        """Send to the inner sink if accepted (silently skip otherwise)."""
        if self.accepts(n):
            await self.inner.send(n)

    async def aclose(self) -> None:
        """Close the inner sink if it can be closed."""
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()
