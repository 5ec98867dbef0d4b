"""Grafana dashboards as code: generated from the plant configuration, never hand-edited.

``python -m gmp_edge.dashboards --config plant.toml --out deploy/grafana/dashboards`` writes them;
``--check`` fails when the committed files differ from what the configuration generates.
"""

from __future__ import annotations

from gmp_edge.dashboards.generate import (
    DATASOURCE_NAME,
    DATASOURCE_UID,
    build_dashboards,
    cleanroom_dashboard,
    health_dashboard,
    press_dashboard,
    render,
)

__all__ = [
    "DATASOURCE_NAME",
    "DATASOURCE_UID",
    "build_dashboards",
    "cleanroom_dashboard",
    "health_dashboard",
    "press_dashboard",
    "render",
]
