"""Failures of network calls: which ones lose the link, and how they read in messages.

A call that times out, finds the channel closed or the session gone raises
:class:`LinkError` (reconnect); any other service fault stays a ``UaStatusCodeError``
for the caller to judge. Messages never carry an endpoint's credentials.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from asyncua import ua
from asyncua.ua.uaerrors import UaError, UaStatusCodeError

from gmp_edge.collector.opcua.convert import status_text
from gmp_edge.errors import GmpEdgeError

# Service results that mean the session or channel is gone, not that the data is bad.
LINK_CODES = frozenset(
    {
        ua.StatusCodes.BadTimeout,
        ua.StatusCodes.BadCommunicationError,
        ua.StatusCodes.BadConnectionClosed,
        ua.StatusCodes.BadServerNotConnected,
        ua.StatusCodes.BadServerHalted,
        ua.StatusCodes.BadShutdown,
        ua.StatusCodes.BadSecureChannelClosed,
        ua.StatusCodes.BadSecureChannelIdInvalid,
        ua.StatusCodes.BadSessionClosed,
        ua.StatusCodes.BadSessionIdInvalid,
        ua.StatusCodes.BadSessionNotActivated,
        ua.StatusCodes.BadNoSubscription,
        ua.StatusCodes.BadSubscriptionIdInvalid,
        ua.StatusCodes.BadTooManySessions,
    }
)


class LinkError(GmpEdgeError):
    """The connection is unusable (timeout, closed, session gone): reconnect."""


def describe_error(exc: BaseException, timeout_s: float | None = None) -> str:
    """A short, human-readable reason for a failed network call."""
    if isinstance(exc, UaStatusCodeError):
        return status_text(int(exc.code))
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:g} s" if timeout_s else "timed out"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def strip_credentials(endpoint: str) -> str:
    """The endpoint URL without any ``user:password@`` part, for messages and the API."""
    parts = urlsplit(endpoint)
    if "@" not in parts.netloc:
        return endpoint
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


async def timed(aw: Any, what: str, limit: float) -> Any:
    """Await a network call within ``limit`` seconds; link-level failures → LinkError."""
    try:
        return await asyncio.wait_for(aw, limit)
    except TimeoutError:
        raise LinkError(f"{what}: no answer within {limit:g} s") from None
    except UaStatusCodeError as exc:
        if int(exc.code) in LINK_CODES:
            raise LinkError(f"{what}: {status_text(int(exc.code))}") from None
        raise
    except (OSError, UaError) as exc:
        raise LinkError(f"{what}: {describe_error(exc)}") from None
