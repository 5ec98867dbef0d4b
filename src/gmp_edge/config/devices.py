"""How the edge box reaches its instruments: Modbus TCP devices and OPC UA servers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from gmp_edge.config.base import ID, ConfigModel
from gmp_edge.config.registers import Order


class ModbusDevice(ConfigModel):
    """A Modbus TCP device (or a unit behind a gateway)."""

    id: ID
    protocol: Literal["modbus"]
    host: str = Field(min_length=1)
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=247)
    timeout_s: float = Field(default=1.0, gt=0, le=60)
    poll_interval_s: float = Field(default=1.0, gt=0, le=3600)
    address_base: Literal[0, 1] = 0
    max_registers_per_request: int = Field(default=125, ge=1, le=125)
    max_register_gap: int = Field(default=0, ge=0, le=124)
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    record_mode: Literal["none", "lighthouse"] = "none"
    # the record's analog float word order: no default, the models differ (required, at
    # check-config, for a device with analog record tags)
    float_word_order: Order | None = None
    # record mode: a counter whose newest record is older than this many of its own cycles
    # (hold + sample time, read from the counter) is not sampling: Bad readings and a gap
    record_missed_cycles: int = Field(default=3, ge=1, le=1000)
    description: str = ""


class OpcuaDevice(ConfigModel):
    """An OPC UA server, e.g. a tablet press controller."""

    id: ID
    protocol: Literal["opcua"]
    endpoint: str = Field(pattern=r"^opc\.tcp://.+")
    security_mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    security_policy: Literal[
        "None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"
    ] = "None"
    certificate: Path | None = None
    private_key: Path | None = None
    username: str | None = None
    password_env: str | None = None
    mode: Literal["subscription", "polling"] = "subscription"
    sampling_interval_ms: float = Field(default=500, ge=0)
    publishing_interval_ms: float = Field(default=1000, gt=0)
    queue_size: int = Field(default=100, ge=1)
    poll_interval_s: float = Field(default=1.0, gt=0)
    timeout_s: float = Field(default=5.0, gt=0, le=120)
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    description: str = ""

    @model_validator(mode="after")
    def _security_is_consistent(self) -> OpcuaDevice:
        if (self.security_mode == "None") != (self.security_policy == "None"):
            raise ValueError(
                f"security_mode={self.security_mode!r} and security_policy="
                f"{self.security_policy!r} must both be 'None' or both be set"
            )
        if self.security_mode != "None" and (self.certificate is None or self.private_key is None):
            raise ValueError("a secured endpoint needs certificate and private_key")
        return self


Device = Annotated[ModbusDevice | OpcuaDevice, Field(discriminator="protocol")]
