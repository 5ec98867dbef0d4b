"""What is configured for an OPC UA server and its tags, checked when it is built."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

SecurityMode = Literal["None", "Sign", "SignAndEncrypt"]
SecurityPolicy = Literal["None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"]
# the policies by name, without importing asyncua (the client maps each name to its class)
SECURITY_POLICIES: tuple[str, ...] = get_args(SecurityPolicy)
CollectMode = Literal["subscription", "polling"]


@dataclass(frozen=True, slots=True)
class OpcuaDeviceSpec:
    """Connection, security and schedule of one OPC UA server.

    ``mode`` "subscription" lets the server push changes (sampled every
    ``sampling_interval_ms``, published every ``publishing_interval_ms``, up to
    ``queue_size`` values queued per item between publishes); "polling" reads every
    node every ``poll_interval_s``. In subscription mode ``poll_interval_s`` is the
    liveness check period and the Bad-reading period while the link is down.
    """

    device_id: str
    endpoint: str
    security_mode: SecurityMode = "None"
    security_policy: SecurityPolicy = "None"
    certificate: str | None = None
    private_key: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in logs or reprs
    mode: CollectMode = "subscription"
    sampling_interval_ms: float = 500.0
    publishing_interval_ms: float = 1000.0
    queue_size: int = 100
    poll_interval_s: float = 1.0
    timeout_s: float = 5.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not self.endpoint.startswith("opc.tcp://"):
            problems.append(f"endpoint must start with opc.tcp://, got {self.endpoint!r}")
        if self.security_mode not in ("None", "Sign", "SignAndEncrypt"):
            problems.append(f"unknown security_mode {self.security_mode!r}")
        if self.security_policy not in SECURITY_POLICIES:
            problems.append(f"unknown security_policy {self.security_policy!r}")
        if (self.security_mode == "None") != (self.security_policy == "None"):
            problems.append("security_mode and security_policy must both be None or both be set")
        if self.security_mode != "None" and not (self.certificate and self.private_key):
            problems.append("a secured endpoint needs certificate and private_key")
        if self.mode not in ("subscription", "polling"):
            problems.append(f"unknown mode {self.mode!r}")
        if self.sampling_interval_ms < 0 or self.publishing_interval_ms <= 0:
            problems.append("sampling_interval_ms must be >= 0 and publishing_interval_ms > 0")
        if self.queue_size < 1:
            problems.append(f"queue_size must be >= 1, got {self.queue_size}")
        if self.poll_interval_s <= 0 or self.timeout_s <= 0:
            problems.append("poll_interval_s and timeout_s must be > 0")
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            problems.append("need 0 < reconnect_min_s <= reconnect_max_s")
        if problems:
            raise ValueError(f"OPC UA device {self.device_id!r}: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class OpcuaPoint:
    """One tag fed by one variable node, e.g. ``ns=2;s=TabletPress.MainCompressionForce``."""

    tag: str
    node_id: str
