"""Server operation limits: how many nodes one call may carry, and cutting work to fit.

A server announces MaxNodesPerRead and MaxMonitoredItemsPerCall in its
``ServerCapabilities.OperationLimits``; one that announces nothing (or less than it
enforces) answers BadTooManyOperations, and the chunk is halved until it fits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from asyncua import ua

T = TypeVar("T")

OPERATION_LIMIT_NODES = (
    ua.NodeId(ua.Int32(ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead)),
    ua.NodeId(
        ua.Int32(ua.ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall)
    ),
)


def operation_limit(raw: Any) -> int:
    """A server OperationLimits value as a chunk size; 0 means unlimited (also for junk)."""
    if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
        return 0
    return raw


def operation_limits(dvs: Sequence[ua.DataValue]) -> tuple[int, int]:
    """(MaxNodesPerRead, MaxMonitoredItemsPerCall) from a read of OPERATION_LIMIT_NODES.

    A missing, Bad or junk value is 0: unlimited, until the server says otherwise.
    """
    values = [
        dv.Value.Value
        if (dv.StatusCode is None or dv.StatusCode.is_good()) and dv.Value is not None
        else None
        for dv in dvs
    ] + [None, None]
    return operation_limit(values[0]), operation_limit(values[1])


def chunked(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """Split ``items`` into consecutive chunks of at most ``size``; ``size`` <= 0 means one."""
    if not items:
        return []
    if size <= 0:
        return [items]
    return [items[i : i + size] for i in range(0, len(items), size)]


def smaller_chunk(code: int, size: int) -> int | None:
    """The chunk size to retry with after a call of ``size`` items failed with ``code``.

    Half of ``size`` when the server said BadTooManyOperations (its real limit is lower)
    and a smaller chunk is possible; None when the failure is real.
    """
    if code == ua.StatusCodes.BadTooManyOperations and size > 1:
        return max(1, size // 2)
    return None
