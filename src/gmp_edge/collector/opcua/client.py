"""The asyncua Client for one device: endpoint, identity, timeouts and message security."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from asyncua import Client, ua
from asyncua.crypto import security_policies, uacrypto
from cryptography import x509

from gmp_edge.collector.opcua.errors import timed

if TYPE_CHECKING:
    from gmp_edge.collector.opcua.spec import OpcuaDeviceSpec

POLICIES: dict[str, type[security_policies.SecurityPolicy]] = {
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
    "Aes128_Sha256_RsaOaep": security_policies.SecurityPolicyAes128Sha256RsaOaep,
    "Aes256_Sha256_RsaPss": security_policies.SecurityPolicyAes256Sha256RsaPss,
}

_SESSION_TIMEOUT_MS = 60_000  # a vanished edge box frees its server session within a minute


def new_client(spec: OpcuaDeviceSpec) -> Client:
    """An unconnected client for ``spec``'s endpoint, named and with its user identity."""
    client = Client(
        spec.endpoint,
        timeout=spec.timeout_s,
        # asyncua's own health probe: never tighter than one request timeout
        watchdog_intervall=max(spec.timeout_s, spec.poll_interval_s),
    )
    client.name = "gmp-edge"
    client.description = f"gmp-edge collector for {spec.device_id}"
    client.application_uri = "urn:gmp-edge:collector"
    client.session_timeout = _SESSION_TIMEOUT_MS
    if spec.username:
        client.set_user(spec.username)
    if spec.password:
        client.set_password(spec.password)
    return client


async def apply_security(client: Client, spec: OpcuaDeviceSpec) -> None:
    """Sign or encrypt as ``spec`` says (asks the server for its endpoints); no-op for None."""
    if spec.security_mode == "None":
        return
    assert spec.certificate is not None and spec.private_key is not None
    # The server checks that the session's ApplicationUri matches the certificate.
    with contextlib.suppress(Exception):
        cert = await uacrypto.load_certificate(spec.certificate)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
        if uris:
            client.application_uri = uris[0]
    await timed(
        client.set_security(
            POLICIES[spec.security_policy],
            spec.certificate,
            spec.private_key,
            mode=getattr(ua.MessageSecurityMode, spec.security_mode),
        ),
        "security setup (GetEndpoints)",
        spec.timeout_s,
    )
