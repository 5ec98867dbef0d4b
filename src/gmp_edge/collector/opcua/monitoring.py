"""What the driver asks a server to push: subscription parameters and monitored items.

Each point becomes one monitored item whose client handle is ``HANDLE_BASE`` plus the
point's index, so a notification finds its tag again.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from asyncua import ua

if TYPE_CHECKING:
    from gmp_edge.collector.opcua.spec import OpcuaDeviceSpec

HANDLE_BASE = 1000  # monitored item client handle = base + point index

# Answers to an item created with a data-change filter that the server cannot apply.
FILTER_REJECTED = frozenset(
    {
        ua.StatusCodes.BadMonitoredItemFilterUnsupported,
        ua.StatusCodes.BadMonitoredItemFilterInvalid,
        ua.StatusCodes.BadFilterNotAllowed,
    }
)


def keepalive_count(publishing_interval_ms: float, poll_interval_s: float) -> int:
    """Publishing intervals per keep-alive so the server speaks at least every poll interval."""
    return max(1, math.floor(poll_interval_s * 1000.0 / publishing_interval_ms))


def subscription_parameters(spec: OpcuaDeviceSpec) -> ua.CreateSubscriptionParameters:
    """CreateSubscription parameters: ``spec``'s interval, a keep-alive per poll interval."""
    params = ua.CreateSubscriptionParameters()
    params.RequestedPublishingInterval = spec.publishing_interval_ms
    params.RequestedMaxKeepAliveCount = keepalive_count(
        spec.publishing_interval_ms, spec.poll_interval_s
    )
    # Part 4 requires lifetime >= 3 x keep-alive; ours rides out a minute without
    # publish requests so a slow client never loses its subscription.
    params.RequestedLifetimeCount = max(
        params.RequestedMaxKeepAliveCount * 10,
        math.ceil(60_000 / spec.publishing_interval_ms),
    )
    params.MaxNotificationsPerPublish = 0  # unlimited: never truncate a publish
    params.PublishingEnabled = True
    params.Priority = 0
    return params


def item_request(
    node_id: ua.NodeId, index: int, spec: OpcuaDeviceSpec, with_filter: bool
) -> ua.MonitoredItemCreateRequest:
    """The request to monitor point ``index``'s node, sampled and queued as ``spec`` says."""
    rv = ua.ReadValueId()
    rv.NodeId = node_id
    rv.AttributeId = ua.AttributeIds.Value
    mp = ua.MonitoringParameters()
    mp.ClientHandle = HANDLE_BASE + index
    mp.SamplingInterval = spec.sampling_interval_ms
    mp.QueueSize = spec.queue_size
    mp.DiscardOldest = True
    if with_filter:
        # report a new source timestamp even when the value repeats: proof of life
        mp.Filter = ua.DataChangeFilter(Trigger=ua.DataChangeTrigger.StatusValueTimestamp)
    mir = ua.MonitoredItemCreateRequest()
    mir.ItemToMonitor = rv
    mir.MonitoringMode = ua.MonitoringMode.Reporting
    mir.RequestedParameters = mp
    return mir


def point_index(client_handle: int) -> int:
    """The point index a monitored item's client handle stands for (may be out of range)."""
    return client_handle - HANDLE_BASE
