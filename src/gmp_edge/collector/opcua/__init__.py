"""OPC UA driver on asyncua: subscriptions or polling, with honest quality and gaps.

Nothing is ever re-stamped: a value is emitted only when the server delivered it in a
notification or answered a read. Notifications go through asyncua's handler path (one
task per notification, unbounded) rather than its iterator queue, whose default
overflow policy drops the oldest events silently. Sequence-number gaps in the publish
stream are republished when the server still has them and recorded as a gap when not.

Modules, each with one job:

- ``spec``: the configuration of a server (:class:`OpcuaDeviceSpec`) and its tags.
- ``client``: the asyncua Client for a spec: identity, timeouts, message security.
- ``convert``: DataValue and StatusCode → :class:`~collector.reading.Reading`.
- ``errors``: which failures lose the link, and how failures read in messages.
- ``limits``: server operation limits and cutting requests to fit them.
- ``sequence``: publish sequence numbers and the gaps between them.
- ``monitoring``: subscription parameters and monitored-item requests.
- ``link``: the state of one connection.
- ``subscription``: the publish path: sequence checks, republish, the handler.
- ``core``: the driver's state, counters and queue of readings for the sink.
- ``connection``: every request the driver makes to its server over a link.
- ``driver``: the schedule: connect, serve, reconnect, stop (:class:`OpcuaDriver`).
"""

from gmp_edge.collector.opcua.connection import ServerState
from gmp_edge.collector.opcua.convert import (
    convert_value,
    datavalue_to_reading,
    datetime_to_us,
    has_overflow,
    limit_note,
    status_name,
    status_text,
)
from gmp_edge.collector.opcua.driver import OpcuaDriver
from gmp_edge.collector.opcua.errors import describe_error, strip_credentials
from gmp_edge.collector.opcua.limits import chunked, operation_limit
from gmp_edge.collector.opcua.monitoring import keepalive_count
from gmp_edge.collector.opcua.sequence import next_sequence_number, sequence_gap
from gmp_edge.collector.opcua.spec import (
    CollectMode,
    OpcuaDeviceSpec,
    OpcuaPoint,
    SecurityMode,
    SecurityPolicy,
)

__all__ = [
    "CollectMode",
    "OpcuaDeviceSpec",
    "OpcuaDriver",
    "OpcuaPoint",
    "SecurityMode",
    "SecurityPolicy",
    "ServerState",
    "chunked",
    "convert_value",
    "datavalue_to_reading",
    "datetime_to_us",
    "describe_error",
    "has_overflow",
    "keepalive_count",
    "limit_note",
    "next_sequence_number",
    "operation_limit",
    "sequence_gap",
    "status_name",
    "status_text",
    "strip_credentials",
]
