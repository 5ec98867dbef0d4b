"""The simulated plant: every endpoint, device and scenario of a spec, running together.

``SimulatedPlant(spec)`` is an async context manager. On entry it builds the device models,
starts one Modbus TCP server per ``[[modbus]]`` endpoint and one OPC UA server per
``[[opcua]]`` press, then ticks every ``tick_s``: scenario effects are evaluated for the time
since start, device models advance, communication faults are applied to the servers, and
server restarts stop/start listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from types import TracebackType
from typing import Any

from gmp_edge.clock import SYSTEM_CLOCK, Clock
from gmp_edge.periodic import Periodic
from gmp_edge.simulators.dp_transmitter import DpTransmitter
from gmp_edge.simulators.modbus_tcp import Disconnect, ModbusTcpServer, UnitFault
from gmp_edge.simulators.opcua_press import OpcUaPressServer
from gmp_edge.simulators.particle_counter import ParticleCounter
from gmp_edge.simulators.register_device import RegisterDevice
from gmp_edge.simulators.scenario import (
    NOMINAL,
    Scenario,
    ScenarioEvent,
    TargetEffects,
    active_events,
)
from gmp_edge.simulators.spec import (
    DpParams,
    ParticleCounterParams,
    PlantSpec,
    TrhParams,
    UnitSpec,
    check_event,
)
from gmp_edge.simulators.tablet_press import TabletPress
from gmp_edge.simulators.trh_transmitter import TrhTransmitter

log = logging.getLogger(__name__)


def _rng(seed: int, device_id: str) -> random.Random:
    # A string seed is hashed with SHA-512 by random.seed: stable across runs and platforms,
    # and each device gets its own stream, so adding a device does not change the others.
    return random.Random(f"{seed}:{device_id}")


def build_device(unit: UnitSpec, seed: int, now: float) -> RegisterDevice:
    """The device model for one ``[[modbus.units]]`` entry."""
    rng = _rng(seed, unit.id)
    params = unit.params
    if isinstance(params, ParticleCounterParams):
        return ParticleCounter(params, rng, now)
    if isinstance(params, TrhParams):
        return TrhTransmitter(params, rng, now)
    if isinstance(params, DpParams):
        return DpTransmitter(params, rng, now)
    raise ValueError(f"no model for {unit.model!r}")  # pragma: no cover - spec validated


class SimulatedPlant:
    """All simulated endpoints of a spec; see the module docstring.

    ``modbus`` / ``opcua`` select which kinds of server run (the stand-alone entry points run
    only one kind). ``clock`` gives the wall time for device timestamps (epoch seconds, from
    :meth:`~gmp_edge.clock.Clock.now_us`).
    """

    def __init__(
        self,
        spec: PlantSpec,
        *,
        modbus: bool = True,
        opcua: bool = True,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.spec = spec
        self.scenario = Scenario(spec.scenario)
        self._clock = clock
        now = self._wall_s()
        self._devices: dict[str, RegisterDevice | TabletPress] = {}
        self._units: dict[str, tuple[str, int]] = {}  # device id -> (endpoint id, unit id)
        self._endpoints: dict[str, ModbusTcpServer] = {}
        self._presses: dict[str, OpcUaPressServer] = {}
        if modbus:
            for endpoint in spec.modbus:
                units: dict[int, RegisterDevice] = {}
                for unit in endpoint.units:
                    device = build_device(unit, spec.seed, now)
                    self._devices[unit.id] = device
                    self._units[unit.id] = (endpoint.id, unit.unit_id)
                    units[unit.unit_id] = device
                self._endpoints[endpoint.id] = ModbusTcpServer(
                    endpoint.host, endpoint.port, units, name=endpoint.id
                )
        if opcua:
            for server in spec.opcua:
                press = TabletPress(server.press, _rng(spec.seed, server.id), now)
                self._devices[server.id] = press
                self._presses[server.id] = OpcUaPressServer(server, press)
        self._t0: float | None = None
        self._lock = asyncio.Lock()  # a tick and an inject() must not interleave
        self._ticker: Periodic | None = None
        self._active: set[ScenarioEvent] = set()

    # --- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> SimulatedPlant:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start every server, apply the scenario at t=0 and begin ticking."""
        try:
            for endpoint in self._endpoints.values():
                await endpoint.start()
            for press in self._presses.values():
                await press.start()
        except BaseException:
            await self._stop_servers()
            raise
        self._t0 = asyncio.get_running_loop().time()
        await self.step()
        # a broken tick is logged and the next one runs: it must not kill the servers
        self._ticker = Periodic(
            self.step, self.spec.tick_s, name="simulated-plant-tick", first_at_start=False
        )
        self._ticker.start()

    async def stop(self) -> None:
        """Stop ticking and shut every server down."""
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            await ticker.stop()
        await self._stop_servers()

    async def _stop_servers(self) -> None:
        for endpoint in self._endpoints.values():
            await endpoint.stop()
        for press in self._presses.values():
            with contextlib.suppress(Exception):  # a half-started asyncua server may not stop
                await press.stop()

    # --- access -------------------------------------------------------------------------------

    def _wall_s(self) -> float:
        # Devices stamp their values in epoch seconds; the clock speaks microseconds.
        return self._clock.now_us() / 1_000_000

    @property
    def elapsed_s(self) -> float:
        """Seconds since the plant started (the scenario's time axis)."""
        if self._t0 is None:
            return 0.0
        return asyncio.get_running_loop().time() - self._t0

    def modbus_port(self, endpoint_id: str) -> int:
        """The TCP port a Modbus endpoint listens on."""
        return self._endpoints[endpoint_id].port

    def opcua_endpoint(self, server_id: str) -> str:
        """The endpoint URL of an OPC UA server, opc.tcp://host:port/gmp-edge/press."""
        return self._presses[server_id].endpoint

    def device(self, device_id: str) -> RegisterDevice | TabletPress:
        """The model behind a device id, for direct inspection in tests."""
        return self._devices[device_id]

    def endpoint(self, endpoint_id: str) -> ModbusTcpServer:
        """The Modbus TCP server of an endpoint id."""
        return self._endpoints[endpoint_id]

    def opcua_server(self, server_id: str) -> OpcUaPressServer:
        """The OPC UA server of a press id."""
        return self._presses[server_id]

    def ready_info(self) -> dict[str, Any]:
        """What the entry points print as their ready line."""
        return {
            "ready": True,
            "modbus": {name: server.port for name, server in self._endpoints.items()},
            "opcua": {name: server.endpoint for name, server in self._presses.items()},
        }

    # --- faults -------------------------------------------------------------------------------

    async def inject(self, event: ScenarioEvent) -> None:
        """Apply a scenario event starting now (its ``at_s`` is ignored) and take effect at once."""
        check_event(event, self.spec)
        self.scenario.add(event.shifted_to(self.elapsed_s))
        await self.step()

    async def clear_faults(self) -> None:
        """End every event that has started (injected or scripted); later ones still come."""
        self.scenario.end_active(self.elapsed_s)
        await self.step()

    # --- the tick -----------------------------------------------------------------------------

    async def step(self) -> None:
        """Evaluate the scenario now and bring devices and servers in line with it."""
        async with self._lock:
            t = self.elapsed_s
            now = self._wall_s()
            effects = self.scenario.effects_at(t)
            self._log_transitions(t)
            for device_id, device in self._devices.items():
                device.tick(now, effects.get(device_id, NOMINAL))
            for device_id, (endpoint_id, unit_id) in self._units.items():
                self._endpoints[endpoint_id].set_fault(
                    unit_id, _unit_fault(effects.get(device_id, NOMINAL))
                )
            for endpoint_id, server in self._endpoints.items():
                down = effects.get(endpoint_id, NOMINAL).server_down
                if down and server.serving:
                    await server.stop()
                elif not down and not server.serving:
                    await server.start()
            for press_id, press in self._presses.items():
                target = effects.get(press_id, NOMINAL)
                if target.server_down:
                    await press.pause()
                else:
                    await press.resume()
                if not target.frozen:
                    await press.publish()

    def _log_transitions(self, t: float) -> None:
        active = set(active_events(self.scenario.events, t))
        for event in active - self._active:
            log.info(
                "scenario t=%.1fs: %s on %s started (%.0f s%s)",
                t,
                event.kind.value,
                event.target,
                event.duration_s,
                f", magnitude {event.magnitude}" if event.magnitude is not None else "",
            )
        for event in self._active - active:
            log.info("scenario t=%.1fs: %s on %s ended", t, event.kind.value, event.target)
        self._active = active


def _unit_fault(effects: TargetEffects) -> UnitFault:
    disconnect = Disconnect(effects.disconnect.value) if effects.disconnect else None
    return UnitFault(disconnect=disconnect, exception_code=effects.exception_code)
