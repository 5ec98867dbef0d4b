"""The plant configuration schema: a leaf package every other package may import.

Typed pydantic models of the plant file, one module per subject, and nothing else: no
file is read here and no other package of ours is imported (an import-linter contract
keeps it so). Reading and validating a file is the composition root's job
(:mod:`gmp_edge.edge.config`), which also hands in the checks that need the domain
(:mod:`gmp_edge.config.checks`).
"""

from __future__ import annotations

from gmp_edge.config.api import ApiConfig, SecurityConfig
from gmp_edge.config.base import ID, ConfigModel, PriorityName, StateName, StrictModel
from gmp_edge.config.checks import NO_CHECKS, DomainChecks, checks_in, validation_context
from gmp_edge.config.devices import Device, ModbusDevice, OpcuaDevice
from gmp_edge.config.health import HealthConfig
from gmp_edge.config.influx import InfluxConfig
from gmp_edge.config.limits import LimitEntry, LimitSetEntry, ThresholdEntry, TrendRule
from gmp_edge.config.monitoring import MonitoringConfig, ProductionSource
from gmp_edge.config.mqtt import MqttConfig, ReadingsPolicy, TlsConfig
from gmp_edge.config.notify import NotifyConfig, WebhookConfig
from gmp_edge.config.plant import PlantConfig, cross_check
from gmp_edge.config.registers import DataType, Order, register_count
from gmp_edge.config.secrets import MissingSecret, secret_from_env
from gmp_edge.config.site import Area, Equipment, Grade, Room, Site
from gmp_edge.config.store import SimulationConfig, StoreConfig
from gmp_edge.config.tags import ModbusSource, OpcuaSource, RecordSource, Tag, TagKind

__all__ = [
    "ID",
    "NO_CHECKS",
    "ApiConfig",
    "Area",
    "ConfigModel",
    "DataType",
    "Device",
    "DomainChecks",
    "Equipment",
    "Grade",
    "HealthConfig",
    "InfluxConfig",
    "LimitEntry",
    "LimitSetEntry",
    "MissingSecret",
    "ModbusDevice",
    "ModbusSource",
    "MonitoringConfig",
    "MqttConfig",
    "NotifyConfig",
    "OpcuaDevice",
    "OpcuaSource",
    "Order",
    "PlantConfig",
    "PriorityName",
    "ProductionSource",
    "ReadingsPolicy",
    "RecordSource",
    "Room",
    "SecurityConfig",
    "SimulationConfig",
    "Site",
    "StateName",
    "StoreConfig",
    "StrictModel",
    "Tag",
    "TagKind",
    "ThresholdEntry",
    "TlsConfig",
    "TrendRule",
    "WebhookConfig",
    "checks_in",
    "cross_check",
    "register_count",
    "secret_from_env",
    "validation_context",
]
