"""MQTT publishing for the edge box: readings, alarm and deviation events, retained status,
and MES batch commands in (docs/decisions/0013-mqtt.md).

``topics`` and ``payloads`` are pure (names and JSON bodies); ``publisher`` is the thin I/O
shell around paho-mqtt; ``config`` is the pydantic model to embed in the plant configuration.
"""

from __future__ import annotations

from mqttlink.config import MqttConfig, ReadingsPolicy, TlsConfig
from mqttlink.payloads import BatchCommand, CommandError
from mqttlink.publisher import MqttPublisher, MqttStatus, ReadingFilter
from mqttlink.topics import TopicError, Topics

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
