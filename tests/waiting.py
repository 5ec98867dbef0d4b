"""Waiting on a condition with a deadline: the one way tests wait for something to happen.

A test never sleeps a fixed time and then looks: on a busy 2-core machine the thing may not have
happened yet (a flake), and on a quiet one the sleep is wasted. These helpers look again every
few milliseconds until the condition holds, and fail with what was awaited and the last value seen
when the deadline passes. The deadline is generous (it only bounds a failure, never a pass).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# how often a condition is looked at again; short, so a pass costs almost nothing
POLL_S = 0.02


class Timeout(AssertionError):
    """The awaited condition did not hold by the deadline."""


async def until(
    probe: Callable[[], Any],
    timeout: float = 30.0,
    what: str = "",
    poll_s: float = POLL_S,
) -> Any:
    """Return the first truthy value of ``probe()`` (sync or async), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        last = value
        if time.monotonic() >= deadline:
            raise Timeout(f"not within {timeout} s: {what or probe!r} (last: {last!r})")
        await asyncio.sleep(poll_s)


def until_sync(
    probe: Callable[[], T], timeout: float = 30.0, what: str = "", poll_s: float = POLL_S
) -> T:
    """Blocking :func:`until` for code that runs outside an event loop."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise Timeout(f"not within {timeout} s: {what or probe!r} (last: {value!r})")
        time.sleep(poll_s)


async def quiet_for(
    probe: Callable[[], Any], settle_s: float, timeout: float = 30.0, what: str = ""
) -> Any:
    """Wait until ``probe()`` stops changing for ``settle_s``, and return its value.

    For "nothing more arrives" checks (QoS 0 traffic, a stopped publisher): the value must stay
    the same over a whole settle window, measured from its last change, not from a fixed start.
    """
    deadline = time.monotonic() + timeout
    value = probe()
    since = time.monotonic()
    while True:
        await asyncio.sleep(POLL_S)
        now = probe()
        if now != value:
            value, since = now, time.monotonic()
        elif time.monotonic() - since >= settle_s:
            return value
        if time.monotonic() >= deadline:
            raise Timeout(f"still changing after {timeout} s: {what or probe!r} (last: {value!r})")
