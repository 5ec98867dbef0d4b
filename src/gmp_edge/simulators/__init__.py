"""Simulated plant devices speaking real protocols (Modbus TCP, OPC UA) with scripted faults.

The simulators are independent "devices": they never import the product packages (edge,
collector, historian, api). Public entry points are loaded lazily so that
``python -m gmp_edge.simulators.opcua_press`` does not import its own module twice.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gmp_edge.simulators.plant import SimulatedPlant
    from gmp_edge.simulators.scenario import ScenarioEvent
    from gmp_edge.simulators.spec import PlantSpec, SpecError, load_spec, parse_spec

__all__ = ["PlantSpec", "ScenarioEvent", "SimulatedPlant", "SpecError", "load_spec", "parse_spec"]

_LAZY = {
    "SimulatedPlant": "gmp_edge.simulators.plant",
    "ScenarioEvent": "gmp_edge.simulators.scenario",
    "PlantSpec": "gmp_edge.simulators.spec",
    "SpecError": "gmp_edge.simulators.spec",
    "load_spec": "gmp_edge.simulators.spec",
    "parse_spec": "gmp_edge.simulators.spec",
}


def __getattr__(name: str) -> Any:
    """Import the public names on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gmp_edge.simulators' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
