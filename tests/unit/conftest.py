"""Small plants built in code for unit tests.

A unit test names the rooms, devices, tags and limits it needs, by id or path; nothing
depends on what the example plant (``examples/plant.toml``) happens to contain or on where
an item sits in one of its lists. Every plant goes through the product's own parsing
(``parse_config``, or ``load_config`` for a written file), so the objects are the real
ones and every cross-check applies.

``small_plant()`` is one compression room modelled on the example's: a T/RH transmitter,
a particle counter and an OPC UA tablet press, with limits on the temperature, the 0.5 µm
count and the main compression force, and the press's state and batch tags as the room's
production source. Tests add what else they need with the builder's methods.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.config import PlantConfig
from gmp_edge.edge.config import load_config, parse_config
from gmp_edge.edge.service import EdgeService
from gmp_edge.historian.store import Store
from gmp_edge.monitoring.engine import Books, MonitoringEngine

SITE = "acme"
AREA = "solid-dose"
S = 1_000_000


def tag_path(room: str, equipment: str, signal: str) -> str:
    """The ISA-95 path of a tag in the small plants' site and area."""
    return f"{SITE}/{AREA}/{room}/{equipment}/{signal}"


def index_of(items: Iterable[dict[str, Any]], **match: Any) -> int:
    """Position of the one item whose keys equal ``match`` (for expected key paths)."""
    found = [i for i, it in enumerate(items) if all(it.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (match, found)
    return found[0]


def item(items: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    """The one item whose keys equal ``match`` (to change it in place)."""
    return items[index_of(items, **match)]


class PlantBuilder:
    """A plant configuration as the TOML data ``load_config`` would read, built step by step.

    Rooms, equipment, devices, tags, limits and production sources are added by name;
    :meth:`build` parses the data with the real ``gmp_edge.edge.config`` (raising ``ConfigError``
    exactly as a file would), :meth:`load` writes it to a folder and loads the file.
    """

    def __init__(self, site: str = SITE, area: str = AREA, site_name: str = "") -> None:
        self.site, self.area = site, area
        self.data: dict[str, Any] = {
            "site": {"id": site, **({"name": site_name} if site_name else {})},
            "areas": [{"id": area}],
            "rooms": [],
            "equipment": [],
            "devices": [],
            "tags": [],
            "limits": [],
            "production": [],
        }
        self._next_address: dict[str, int] = {}

    # --- structure ------------------------------------------------------------------

    def room(
        self, room_id: str, grade: str | None = "D", adjacent: Iterable[str] = (), **kw: Any
    ) -> PlantBuilder:
        """A room of the area (EU GMP grade; ``adjacent`` rooms for DP pairs)."""
        r: dict[str, Any] = {"id": room_id, "area": self.area, **kw}
        if grade is not None:
            r["grade"] = grade
        if adjacent:
            r["adjacent"] = list(adjacent)
        self.data["rooms"].append(r)
        return self

    def equipment(self, equipment_id: str, kind: str, room: str, **kw: Any) -> PlantBuilder:
        """A qualified asset (``qualified_until``/``calibration_due`` as dates)."""
        self.data["equipment"].append({"id": equipment_id, "kind": kind, "room": room, **kw})
        return self

    def modbus(
        self, device_id: str, room: str, kind: str = "instrument", **device: Any
    ) -> PlantBuilder:
        """A Modbus TCP device and the equipment of the same id it measures with."""
        self.equipment(device_id, kind, room)
        self.data["devices"].append(
            {"id": device_id, "protocol": "modbus", "host": "127.0.0.1", **device}
        )
        return self

    def opcua(self, device_id: str, room: str, kind: str = "tablet_press", **device: Any):
        """An OPC UA server and the equipment of the same id it belongs to."""
        self.equipment(device_id, kind, room)
        endpoint = f"opc.tcp://127.0.0.1:4840/{device_id}"
        self.data["devices"].append(
            {"id": device_id, "protocol": "opcua", "endpoint": endpoint, **device}
        )
        return self

    def tag(
        self,
        device_id: str,
        signal: str,
        kind: str = "other",
        unit: str = "",
        *,
        equipment: str | None = None,
        **kw: Any,
    ) -> str:
        """Add a tag and return its path.

        Without a source the device's usual one is used: an OPC UA node named after the
        signal, or the next free pair of Modbus holding registers as a float32.
        """
        equipment = equipment or device_id
        room = item(self.data["equipment"], id=equipment)["room"]
        path = f"{self.site}/{self.area}/{room}/{equipment}/{signal}"
        t: dict[str, Any] = {"path": path, "device": device_id, "kind": kind, **kw}
        if unit:
            t["unit"] = unit
        if not {"modbus", "record", "opcua"} & set(kw):
            if item(self.data["devices"], id=device_id)["protocol"] == "opcua":
                t["opcua"] = {"node_id": f"ns=2;s={device_id}.{signal}"}
            else:
                address = self._next_address.get(device_id, 1000)
                self._next_address[device_id] = address + 2
                t["modbus"] = {"address": address, "data_type": "float32"}
        self.data["tags"].append(t)
        return path

    def limit(self, tag: str, **kw: Any) -> PlantBuilder:
        """Alert/action limits of a tag (keys as in a ``[[limits]]`` entry)."""
        self.data["limits"].append({"tag": tag, **kw})
        return self

    def production(self, room: str, **kw: Any) -> PlantBuilder:
        """How a room's production state (and batch) is known."""
        self.data["production"].append({"room": room, **kw})
        return self

    def section(self, name: str, **kw: Any) -> PlantBuilder:
        """Set keys of a single section: store, api, security, monitoring, notify, ..."""
        self.data.setdefault(name, {}).update(kw)
        return self

    def update(self, section: str, key: str, value: str, **kw: Any) -> PlantBuilder:
        """Change the item of a list section whose ``key`` is ``value``."""
        item(self.data[section], **{key: value}).update(kw)
        return self

    # --- results --------------------------------------------------------------------

    def toml_data(self) -> dict[str, Any]:
        """A copy of the data, empty lists left out (as a hand-written file would)."""
        return {k: copy.deepcopy(v) for k, v in self.data.items() if v != []}

    def build(self, path: Path = Path("plant.toml")) -> PlantConfig:
        """The parsed configuration (``ConfigError`` names ``path`` and the key paths)."""
        return parse_config(self.toml_data(), path)

    def write(self, path: Path) -> Path:
        """Write the plant as a TOML file."""
        path.write_bytes(tomli_w.dumps(self.toml_data()).encode())
        return path

    def load(self, folder: Path, store: str = "s.db") -> tuple[PlantConfig, str]:
        """Write ``folder/plant.toml`` (its store at ``folder/<store>``) and load it: the
        configuration with the file's SHA-256, exactly as the service starts."""
        self.section("store", path=store)
        return load_config(self.write(folder / "plant.toml"))


# --- the small plant ----------------------------------------------------------------------

COMPRESSION = "compression"
CORRIDOR = "corridor"
TRH = "trh-01"
COUNTER = "pc-01"
PRESS = "press-01"
PRODUCT = "Paracetamol 500 mg tablets"

TEMP = tag_path(COMPRESSION, TRH, "temperature")  # alert 18.5-23, action 18-24, on-delay 30 s
RH = tag_path(COMPRESSION, TRH, "rh")  # no limits
PARTICLES = tag_path(COMPRESSION, COUNTER, "particles_0_5")  # alert 1e6, action 3e6
FORCE = tag_path(COMPRESSION, PRESS, "main_compression_force")  # alert 13-17, action 12-18
SPEED = tag_path(COMPRESSION, PRESS, "turret_speed")  # a press parameter without limits
STATE = tag_path(COMPRESSION, PRESS, "state")  # EXECUTE = in operation
BATCH = tag_path(COMPRESSION, PRESS, "batch_id")


def small_plant() -> PlantBuilder:
    """One Grade D compression room (and its corridor) with three instruments; see the
    module docstring and the path constants above for what it holds."""
    b = PlantBuilder()
    b.room(COMPRESSION, "D", adjacent=[CORRIDOR], iso_class=8).room(CORRIDOR, "CNC")
    b.modbus(TRH, COMPRESSION, "trh_transmitter", unit_id=2)
    b.tag(
        TRH,
        "temperature",
        "temperature",
        "degC",
        valid_min=-40.0,
        valid_max=80.0,
        modbus={"address": 2, "data_type": "float32", "word_order": "little"},
    )
    b.tag(
        TRH,
        "rh",
        "rh",
        "%RH",
        valid_min=0.0,
        valid_max=100.0,
        modbus={"address": 0, "data_type": "float32", "word_order": "little"},
    )
    b.modbus(
        COUNTER,
        COMPRESSION,
        "particle_counter",
        unit_id=1,
        poll_interval_s=2.0,
        record_mode="lighthouse",
        float_word_order="little",
    )
    b.tag(COUNTER, "particles_0_5", "particles_0_5", "particles/m3", record={"channel": 1})
    b.opcua(PRESS, COMPRESSION, "tablet_press")
    b.tag(PRESS, "main_compression_force", "press_parameter", "kN")
    b.tag(PRESS, "turret_speed", "press_parameter", "rpm")
    b.tag(PRESS, "state", "state")
    b.tag(PRESS, "batch_id", "batch_id")
    b.limit(
        TEMP,
        alert_low=18.5,
        alert_high=23.0,
        action_low=18.0,
        action_high=24.0,
        deadband=0.2,
        on_delay_s=30,
        delay_justification="transmitter time constant and HVAC recovery after door openings",
        priority="high",
    )
    b.limit(
        PARTICLES,
        alert_high=1_000_000,
        action_high=3_000_000,
        continuous_monitoring=True,
        priority="high",
    )
    b.limit(
        FORCE,
        alert_low=13.0,
        alert_high=17.0,
        action_low=12.0,
        action_high=18.0,
        applies_in=["in_operation"],
        continuous_monitoring=True,
        priority="high",
        trend={"method": "cusum", "mean": 15.0, "sigma": 0.2},
    )
    b.production(
        COMPRESSION,
        state_tag=STATE,
        in_operation_values=["EXECUTE"],
        batch_tag=BATCH,
        equipment=PRESS,
        product=PRODUCT,
    )
    return b


# --- a box recording -------------------------------------------------------------------------


@dataclass
class Box:
    """A store, its audit trail, the books and a started monitoring engine, as the service
    has them once it runs (the tags registered, a service run open)."""

    cfg: PlantConfig
    store: Store
    trail: AuditTrail
    books: Books
    engine: MonitoringEngine


@contextmanager
def recording(cfg: PlantConfig, sha: str) -> Iterator[Box]:
    """A :class:`Box` for ``cfg``, closed on leaving the block."""
    store = Store(cfg.store.path)
    EdgeService(cfg, sha, store)  # registers the tags
    store.start_run(sha, [t.path for t in cfg.tags])
    trail = AuditTrail(cfg.store.path)
    books = Books.open(trail)
    try:
        engine = MonitoringEngine(cfg, sha, store, books)
        engine.start()
        yield Box(cfg, store, trail, books, engine)
    finally:
        books.close()
        trail.close()
        store.close()
