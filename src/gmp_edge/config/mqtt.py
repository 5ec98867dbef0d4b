"""Publishing to an MQTT broker: connection, TLS, topics and which readings go out."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from gmp_edge.config.base import ConfigModel
from gmp_edge.config.checks import checks_in
from gmp_edge.config.secrets import checked_env_name, secret_from_env


class TlsConfig(ConfigModel):
    """TLS to the broker. ``ca_file`` None: the system's trusted CAs."""

    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None  # client certificate (mutual TLS), with key_file
    key_file: Path | None = None

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (client certificate and key)")
        return self


class ReadingsPolicy(ConfigModel):
    """Which readings go out. The store keeps every reading whatever is filtered here.

    ``mode``: ``rbe`` (report by exception) publishes a reading when its quality changed or
    its value moved by more than the deadband of the tag's kind since the last published
    value (default deadband 0: any change); ``all`` publishes every reading.
    ``max_rate_per_tag_hz``: at most this many readings per tag per second of data time; a
    change held back by it is published when the window has passed (latest value wins).
    ``max_silence_s``: in ``rbe`` mode, republish an unchanged value after this long, so a
    subscriber can tell a steady tag from a dead one.
    """

    mode: Literal["rbe", "all"] = "rbe"
    deadband: dict[str, float] = Field(default_factory=dict)  # tag kind -> absolute, tag's unit
    max_rate_per_tag_hz: float | None = Field(default=None, gt=0, le=1000)
    max_silence_s: float | None = Field(default=None, gt=0)
    retain: bool = False

    @field_validator("deadband")
    @classmethod
    def _non_negative(cls, v: dict[str, float]) -> dict[str, float]:
        bad = sorted(k for k, x in v.items() if not x >= 0)
        if bad:
            raise ValueError(f"deadband must be >= 0 (kinds {', '.join(bad)})")
        return v


class MqttConfig(ConfigModel):
    """One MQTT broker (or cluster address) this box publishes to.

    ``topic_prefix`` is checked by the MQTT link's topic rules when the loader passes them
    (see :mod:`gmp_edge.config.checks`); the publisher checks it again when it starts.
    """

    host: str = Field(min_length=1)
    port: int = Field(default=1883, ge=1, le=65535)
    # Stable across restarts: the broker keeps the persistent session under this id.
    # None: ``gmp-edge-{site}``.
    client_id: str | None = Field(default=None, min_length=1, max_length=128)
    username: str | None = None
    # Name of an environment variable holding the password; the secret stays out of the file.
    password_env: str | None = None
    tls: TlsConfig = Field(default_factory=TlsConfig)
    protocol: Literal["5", "3.1.1"] = "5"
    topic_prefix: str = "gmp-edge/{site}"
    readings: ReadingsPolicy = Field(default_factory=ReadingsPolicy)
    qos_readings: Literal[0, 1] = 0
    qos_events: Literal[1, 2] = 1
    # Persistent session: the broker keeps our command subscription (and queues commands)
    # and in-flight QoS 1 state across a disconnect or broker restart for this long.
    session_expiry_s: int = Field(default=3600, ge=0, le=2**32 - 1)
    keepalive_s: int = Field(default=30, ge=5, le=65535)
    status_interval_s: float = Field(default=60.0, gt=0)
    reconnect_min_s: int = Field(default=1, ge=1, le=60)
    reconnect_max_s: int = Field(default=60, ge=1, le=3600)
    # How often the store is polled for new rows when nobody calls ``committed()``.
    poll_interval_s: float = Field(default=0.1, gt=0, le=10)
    batch_size: int = Field(default=1000, ge=1, le=100_000)  # readings per store read
    max_inflight_events: int = Field(default=100, ge=1, le=65535)
    # After the broker refused an event (PUBACK reason >= 0x80), wait this long to resend.
    event_retry_s: float = Field(default=30.0, gt=0)
    drain_timeout_s: float = Field(default=5.0, ge=0, le=300)

    @field_validator("password_env")
    @classmethod
    def _env_name(cls, v: str | None, info: ValidationInfo) -> str | None:
        return checked_env_name(v, info.field_name or "")

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, v: str, info: ValidationInfo) -> str:
        check = checks_in(info.context).topic_prefix
        if check is not None:
            check(v)
        return v

    @model_validator(mode="after")
    def _cross(self) -> MqttConfig:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        if self.tls.enabled is False and (self.tls.ca_file or self.tls.cert_file):
            raise ValueError("tls files are given but tls.enabled is false")
        return self

    def effective_client_id(self, site: str) -> str:
        """The client id to connect with."""
        return self.client_id or f"gmp-edge-{site}"

    def password(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The broker password from ``password_env`` (None when no variable is named);
        :class:`~gmp_edge.config.secrets.MissingSecret` if that variable is unset or empty."""
        if self.password_env is None:
            return None
        return secret_from_env(self.password_env, environ, "mqtt.password_env")
