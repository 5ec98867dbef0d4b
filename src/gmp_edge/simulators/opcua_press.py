"""OPC UA server exposing one simulated tablet press (asyncua).

Address space: namespace ``urn:gmp-edge:sim:tablet-press`` (ns=2), object ``TabletPress``
with Double variables ``ns=2;s=TabletPress.<Name>`` (see
:data:`simulators.tablet_press.DOUBLE_VARIABLES`) and String variables ``State`` and
``BatchId``. Every write carries a SourceTimestamp. :meth:`OpcUaPressServer.pause` /
:meth:`~OpcUaPressServer.resume` stop and restart listening on the same port (server_restart)
while the address space survives.

Run alone: ``python -m gmp_edge.simulators.opcua_press --spec FILE``.
"""

from __future__ import annotations

import logging
import socket
import sys
from datetime import UTC

from asyncua import Node, Server, ua

from gmp_edge.simulators.spec import OpcUaServerSpec
from gmp_edge.simulators.tablet_press import DOUBLE_VARIABLES, STRING_VARIABLES, TabletPress

log = logging.getLogger(__name__)

NAMESPACE_URI = "urn:gmp-edge:sim:tablet-press"
ENDPOINT_PATH = "/gmp-edge/press"
OBJECT_NAME = "TabletPress"


def node_id(name: str, namespace: int = 2) -> str:
    """The string node id of a press variable, e.g. ``ns=2;s=TabletPress.TurretSpeed``."""
    return f"ns={namespace};s={OBJECT_NAME}.{name}"


def _free_port(host: str) -> int:
    # asyncua builds its endpoint descriptions from the configured port before it binds, so
    # "port 0" is resolved here; the tiny race with other processes is acceptable in tests.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class OpcUaPressServer:
    """An asyncua server publishing a :class:`TabletPress` model."""

    def __init__(self, spec: OpcUaServerSpec, press: TabletPress) -> None:
        self.spec = spec
        self.press = press
        self.port = spec.port or _free_port(spec.host)
        self._server = Server()
        self._nodes: dict[str, Node] = {}
        self._namespace = 0
        self._listening = False

    @property
    def endpoint(self) -> str:
        """The endpoint URL clients connect to."""
        return f"opc.tcp://{self.spec.host}:{self.port}{ENDPOINT_PATH}"

    @property
    def listening(self) -> bool:
        """True while clients can connect."""
        return self._listening

    async def start(self) -> None:
        """Build the address space and start listening."""
        server = self._server
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name(f"gmp-edge simulated tablet press {self.spec.id}")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        self._namespace = await server.register_namespace(NAMESPACE_URI)
        ns = self._namespace
        press = await server.nodes.objects.add_object(
            f"ns={ns};s={OBJECT_NAME}", f"{ns}:{OBJECT_NAME}"
        )
        for name in DOUBLE_VARIABLES:
            self._nodes[name] = await press.add_variable(
                node_id(name, ns), f"{ns}:{name}", 0.0, varianttype=ua.VariantType.Double
            )
        for name in STRING_VARIABLES:
            self._nodes[name] = await press.add_variable(
                node_id(name, ns), f"{ns}:{name}", "", varianttype=ua.VariantType.String
            )
        await self.publish()
        await server.start()
        self._listening = True
        log.info("%s: OPC UA listening on %s", self.spec.id, self.endpoint)

    async def stop(self) -> None:
        """Stop the server and close every session (a controller reboot)."""
        self._listening = False
        await self._server.stop()
        # asyncua keeps a session with subscriptions alive after its connection is lost, so a
        # client can take it over on a new channel (Part 4 6.7); stopping the server does not
        # close them, and their timers would run on in the stopped server. A reboot loses them.
        # asyncua offers no public list of the sessions, hence the registry attribute.
        sessions = getattr(self._server.iserver, "_external_sessions", {})
        for session in list(sessions.values()):
            await session.close_session()
        # a subscription whose session was being set up or torn down while the server stopped
        # is in no session's list any more; the reboot ends it too
        service = self._server.iserver.subscription_service
        if service.subscriptions:
            await service.delete_subscriptions(list(service.subscriptions))
        log.info("%s: OPC UA stopped", self.spec.id)

    async def pause(self) -> None:
        """Stop listening and drop connections; the address space stays (server_restart)."""
        if not self._listening or self._server.bserver is None:
            return
        self._listening = False
        await self._server.bserver.stop()
        log.info("%s: OPC UA stopped listening (server_restart)", self.spec.id)

    async def resume(self) -> None:
        """Listen again on the same port after :meth:`pause`."""
        if self._listening or self._server.bserver is None:
            return
        await self._server.bserver.start()
        self._listening = True
        log.info("%s: OPC UA listening again on %s", self.spec.id, self.endpoint)

    async def publish(self) -> None:
        """Write the press's current values, each stamped with the same SourceTimestamp."""
        stamp = ua.DateTime.now(UTC)
        writes: list[tuple[str, ua.Variant]] = [
            (name, ua.Variant(float(self.press.values[name]), ua.VariantType.Double))
            for name in DOUBLE_VARIABLES
        ]
        writes.append(("State", ua.Variant(self.press.state, ua.VariantType.String)))
        writes.append(("BatchId", ua.Variant(self.press.batch_id, ua.VariantType.String)))
        for name, variant in writes:
            value = ua.DataValue(variant, SourceTimestamp=stamp, ServerTimestamp=stamp)
            await self._server.write_attribute_value(self._nodes[name].nodeid, value)

    async def set_batch(self, batch_id: str, state: str) -> None:
        """Change batch id and state and publish at once."""
        self.press.set_batch(batch_id, state)
        await self.publish()


if __name__ == "__main__":
    from gmp_edge.simulators.runner import main

    sys.exit(main(prog="python -m gmp_edge.simulators.opcua_press", modbus=False, opcua=True))
