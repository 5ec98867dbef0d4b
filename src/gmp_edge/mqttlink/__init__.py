"""MQTT publishing for the edge box: readings, alarm and deviation events, retained status,
and MES batch commands in (docs/decisions/0013-mqtt.md).

``topics`` and ``payloads`` are pure (names and JSON bodies); ``publisher`` is the thin I/O
shell around paho-mqtt; the configuration models live in :mod:`gmp_edge.config` (re-exported here).
"""

from __future__ import annotations

from gmp_edge.config import MqttConfig, ReadingsPolicy, TlsConfig
from gmp_edge.mqttlink.payloads import BatchCommand, CommandError
from gmp_edge.mqttlink.publisher import MqttPublisher, MqttStatus, ReadingFilter
from gmp_edge.mqttlink.topics import TopicError, Topics

__all__ = [
    "BatchCommand",
    "CommandError",
    "MqttConfig",
    "MqttPublisher",
    "MqttStatus",
    "ReadingFilter",
    "ReadingsPolicy",
    "TlsConfig",
    "TopicError",
    "Topics",
]
