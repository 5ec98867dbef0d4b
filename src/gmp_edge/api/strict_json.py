"""Refuse JSON bodies with numbers JSON does not have: NaN, Infinity, or too large for a double.

Python's JSON reader accepts ``NaN``, ``Infinity`` and ``-Infinity`` (RFC 8259 does not) and
reads ``1e309`` as infinity. Let through, such a value could become a limit or a threshold,
or make the validation error that echoes it unencodable (a 500). Every JSON body is read
here once with a reader that refuses them (400, naming the value), then handed on unchanged.
"""

from __future__ import annotations

import json
import math

from starlette.types import Message, Receive, Scope, Send

from gmp_edge.api.middleware import _HttpMiddleware
from gmp_edge.errors import GmpEdgeError


class _NotJsonNumber(GmpEdgeError, ValueError):
    """A number JSON does not have."""


def _constant(name: str) -> float:
    raise _NotJsonNumber(f"{name} is not a JSON number (RFC 8259)")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotJsonNumber(f"{text} is beyond the range of a number here (a 64-bit double)")
    return value


def number_problem(body: bytes) -> str | None:
    """Why ``body`` holds a number JSON does not have (None: it does not, or it is no JSON
    at all, which the route's own validation answers)."""
    try:
        json.loads(body, parse_constant=_constant, parse_float=_float)
    except _NotJsonNumber as exc:
        return str(exc)
    except ValueError:
        return None
    return None


class StrictJson(_HttpMiddleware):
    """400 for a JSON body with NaN, Infinity or an overflowing number; others pass as sent."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read a JSON body whole (the body limit outside bounds it), check it, replay it."""
        ctype = dict(scope.get("headers", [])).get(b"content-type", b"")
        if b"json" not in ctype.lower():
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([], message), send)
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        problem = number_problem(body) if body else None
        if problem is not None:
            out = json.dumps({"detail": f"request body: {problem}"}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 400,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(out)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": out})
            return
        await self.app(scope, _replay([body], None), send)


def _replay(chunks: list[bytes], last: Message | None) -> Receive:
    pending = [{"type": "http.request", "body": c, "more_body": False} for c in chunks]

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        if last is not None:
            return last
        return {"type": "http.disconnect"}

    return receive
