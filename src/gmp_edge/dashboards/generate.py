"""Grafana dashboards built from the plant configuration (pure functions, JSON-able dicts).

Three dashboards, all reading InfluxDB through InfluxQL (served by InfluxDB 1.x, by 2.x
through a DBRP mapping, and by 3.x):

- ``cleanroom_dashboard``: active alarms, deviation events, the DP cascade, one row per
  room (particles, DP, temperature, RH; thresholds = the configured limits) and data
  completeness (good points against the points the polling plan expects).
- ``press_dashboard``: the tablet press parameters with their validated ranges.
- ``health_dashboard``: the edge box itself (points per minute, quality ratio, bad points
  per device, last point per device).

Thresholds come from one place only: ``monitoring.setup.build_limit_set`` — the limit set
the monitoring engine evaluates — so presets (``preset = "dp_min"``) show the same numbers
the engine uses. Nothing here does I/O; ``write_dashboards`` / ``check_dashboards`` in
``gmp_edge.dashboards.__main__`` do.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gmp_edge.config import ModbusDevice, OpcuaDevice, PlantConfig, Tag
from gmp_edge.limits.model import LimitSet, TagLimits
from gmp_edge.monitoring.setup import build_limit_set

SCHEMA_VERSION = 39
DATASOURCE_UID = "gmp-edge-influxdb"
DATASOURCE_NAME = "InfluxDB gmp-edge"
DATASOURCE = {"type": "influxdb", "uid": DATASOURCE_UID}
DATABASE = "gmp_edge"

READING = "reading"
ALARM_EVENT = "alarm_event"
DEVIATION_EVENT = "deviation_event"

# the InfluxDB data model the forwarder writes (measurement -> tag keys / field keys)
TAG_KEYS: dict[str, frozenset[str]] = {
    READING: frozenset({"site", "area", "room", "grade", "equipment", "tag", "unit", "kind"}),
    ALARM_EVENT: frozenset({"room", "tag", "kind", "priority"}),
    DEVIATION_EVENT: frozenset({"room", "classification"}),
}
FIELD_KEYS: dict[str, frozenset[str]] = {
    READING: frozenset({"value", "value_text", "quality", "quality_code", "message", "cause"}),
    ALARM_EVENT: frozenset({"state", "event", "actor", "value", "limit"}),
    DEVIATION_EVENT: frozenset({"id", "status", "action", "actor"}),
}

PARTICLE_KINDS = ("particles_0_5", "particles_1_0", "particles_3_0", "particles_5_0")
ROOM_KINDS = (*PARTICLE_KINDS, "dp", "temperature", "rh")
PRESS_SIGNALS = (
    "main_compression_force",
    "pre_compression_force",
    "turret_speed",
    "tablet_weight",
    "hardness",
    "ejection_force",
)
# how long an alarm may stay in one state and still be listed as active
ACTIVE_ALARM_LOOKBACK = "400d"

ALERT_COLOR = "orange"
ACTION_COLOR = "red"
NORMAL_COLOR = "green"

_UNITS = {
    "degC": "celsius",
    "%RH": "humidity",
    "Pa": "pressurepa",
    "rpm": "rotrpm",
    "mg": "massmg",
    "mm": "lengthmm",
    "%": "percent",
}
_KIND_TITLES = {
    "particles_0_5": "Particles ≥ 0.5 µm",
    "particles_1_0": "Particles ≥ 1.0 µm",
    "particles_3_0": "Particles ≥ 3.0 µm",
    "particles_5_0": "Particles ≥ 5.0 µm",
    "dp": "Differential pressure",
    "temperature": "Temperature",
    "rh": "Relative humidity",
}
_GOOD_ONLY = (
    "Good-quality readings only (what the limit engine evaluates); Bad and Uncertain "
    "points appear under Data completeness and on the edge health dashboard. Each interval "
    "shows its minimum and maximum, so downsampling never hides an excursion; empty "
    "intervals are gaps, never filled."
)


# --- small helpers -----------------------------------------------------------------------


def grafana_unit(unit: str) -> str:
    """The Grafana unit id for a configured unit string (a suffix when Grafana has none)."""
    if unit in _UNITS:
        return _UNITS[unit]
    return f"suffix: {unit}" if unit else "short"


def influx_str(value: str) -> str:
    """An InfluxQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def stable_uid(name: str, site_id: str) -> str:
    """A dashboard UID that depends only on the dashboard's name and the site id (<= 40)."""
    uid = f"gmp-edge-{name}-{site_id}".lower()
    uid = re.sub(r"[^a-z0-9_-]", "-", uid)
    if len(uid) <= 40:
        return uid
    digest = hashlib.sha256(site_id.encode()).hexdigest()[:8]
    return f"gmp-edge-{name}"[:31] + f"-{digest}"


def _fmt(v: float) -> str:
    """A number without exponent notation (InfluxQL and people both read it)."""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def limits_text(lim: TagLimits) -> str:
    """The limits in words, with their comparison (for panel descriptions)."""
    parts = []
    for name, th, op_ex, op_in in (
        ("action low", lim.action_low, "<", "≤"),
        ("alert low", lim.alert_low, "<", "≤"),
        ("alert high", lim.alert_high, ">", "≥"),
        ("action high", lim.action_high, ">", "≥"),
    ):
        if th is not None:
            parts.append(f"{name}: value {op_in if th.inclusive else op_ex} {_fmt(th.value)}")
    text = "; ".join(parts) if parts else "no limits"
    if lim.applies_in is not None:
        text += f" (applies in {', '.join(sorted(lim.applies_in))})"
    if lim.on_delay_s:
        text += f"; on-delay {_fmt(lim.on_delay_s)} s"
    return text


def threshold_steps(lim: TagLimits | None) -> list[dict[str, Any]]:
    """Grafana threshold steps (ascending) whose values are exactly the tag's limits.

    Colours: action zone red, alert zone orange, inside the alert limits green. Grafana
    colours ``value >= step``; whether the limit value itself is an excursion
    (``inclusive``) is stated in the panel description.
    """
    if lim is None:
        return [{"color": NORMAL_COLOR, "value": None}]
    if lim.action_low is not None:
        base = ACTION_COLOR
    elif lim.alert_low is not None:
        base = ALERT_COLOR
    else:
        base = NORMAL_COLOR
    steps: list[dict[str, Any]] = [{"color": base, "value": None}]
    if lim.action_low is not None:
        color = ALERT_COLOR if lim.alert_low is not None else NORMAL_COLOR
        steps.append({"color": color, "value": lim.action_low.value})
    if lim.alert_low is not None:
        steps.append({"color": NORMAL_COLOR, "value": lim.alert_low.value})
    if lim.alert_high is not None:
        steps.append({"color": ALERT_COLOR, "value": lim.alert_high.value})
    if lim.action_high is not None:
        steps.append({"color": ACTION_COLOR, "value": lim.action_high.value})
    return steps


def _limit_values(lim: TagLimits | None) -> list[float]:
    if lim is None:
        return []
    ths = (lim.action_low, lim.alert_low, lim.alert_high, lim.action_high)
    return [t.value for t in ths if t is not None]


def _thresholds(lim: TagLimits | None) -> dict[str, Any]:
    return {"mode": "absolute", "steps": threshold_steps(lim)}


def tag_signal(tag: Tag) -> str:
    """The InfluxDB ``tag`` tag: the last path segment."""
    return tag.segments[4]


def tag_where(cfg: PlantConfig, tag: Tag) -> str:
    """InfluxQL conditions selecting exactly one configured tag's series."""
    s = tag.segments
    return " AND ".join(
        f'"{k}" = {influx_str(v)}'
        for k, v in (("site", cfg.site.id), ("room", s[2]), ("equipment", s[3]), ("tag", s[4]))
    )


VAR_FILTER = '"room" =~ /^$room$/ AND "tag" =~ /^$tag$/'


def target(
    query: str, ref: str, alias: str = "", result_format: str = "time_series"
) -> dict[str, Any]:
    """A raw InfluxQL target."""
    t: dict[str, Any] = {
        "datasource": DATASOURCE,
        "query": query,
        "rawQuery": True,
        "refId": ref,
        "resultFormat": result_format,
    }
    if alias:
        t["alias"] = alias
    return t


def _ref(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else f"Q{i}"


def envelope_query(cfg: PlantConfig, tag: Tag) -> str:
    """Minimum and maximum of the good readings of one tag per interval (gaps stay gaps)."""
    return (
        'SELECT min("value") AS "min", max("value") AS "max" FROM "reading" '
        f"WHERE {tag_where(cfg, tag)} AND \"quality\" = 'good' AND $timeFilter "
        "GROUP BY time($__interval) fill(null)"
    )


def expected_points_per_minute(cfg: PlantConfig, tag: Tag) -> float | None:
    """Points per minute the polling plan produces for ``tag``; None when event-driven.

    Modbus registers and OPC UA polling produce one point per poll. Particle-counter
    records (one per sample period, which the device sets) and OPC UA subscriptions
    (on change) have no fixed rate the configuration knows.
    """
    dev = next((d for d in cfg.devices if d.id == tag.device), None)
    if isinstance(dev, ModbusDevice) and tag.modbus is not None:
        return 60.0 / dev.poll_interval_s
    if isinstance(dev, OpcuaDevice) and dev.mode == "polling":
        return 60.0 / dev.poll_interval_s
    return None


# --- layout --------------------------------------------------------------------------------


@dataclass
class _Board:
    """Panels with sequential ids and a left-to-right, top-to-bottom grid layout."""

    panels: list[dict[str, Any]] = field(default_factory=list)
    y: int = 0
    x: int = 0
    row_h: int = 0

    def _next_id(self) -> int:
        return len(self.panels) + 1

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "id": self._next_id(),
                "panels": [],
                "title": title,
                "type": "row",
            }
        )
        self.y += 1

    def _newline(self) -> None:
        if self.x:
            self.y += self.row_h
            self.x = 0
            self.row_h = 0

    def add(self, panel: dict[str, Any], w: int = 12, h: int = 8) -> None:
        if self.x + w > 24:
            self._newline()
        panel["id"] = self._next_id()
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)


def timeseries(
    title: str,
    targets: list[dict[str, Any]],
    *,
    unit: str = "short",
    lim: TagLimits | None = None,
    description: str = "",
    overrides: list[dict[str, Any]] | None = None,
    stacking: str = "none",
    draw: str = "line",
    interval: str = "",
) -> dict[str, Any]:
    """A time-series panel; with ``lim`` its thresholds are the tag's limits (dashed)."""
    custom: dict[str, Any] = {
        "drawStyle": draw,
        "fillOpacity": 0 if stacking == "none" else 60,
        "lineWidth": 1,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": stacking},
        "thresholdsStyle": {"mode": "dashed" if lim is not None else "off"},
    }
    values = _limit_values(lim)
    if values:  # keep the limit lines on screen even when the data sit far from them
        has_low = lim is not None and (lim.alert_low is not None or lim.action_low is not None)
        custom["axisSoftMin"] = min(values) if has_low else min(0.0, *values)
        custom["axisSoftMax"] = max(values)
    panel: dict[str, Any] = {
        "datasource": DATASOURCE,
        "description": description,
        "fieldConfig": {
            "defaults": {
                "color": {"mode": "palette-classic"},
                "custom": custom,
                "thresholds": _thresholds(lim),
                "unit": unit,
            },
            "overrides": overrides or [],
        },
        "options": {
            "legend": {"calcs": ["min", "max"], "displayMode": "table", "placement": "bottom"},
            "tooltip": {"mode": "multi", "sort": "none"},
        },
        "targets": targets,
        "title": title,
        "type": "timeseries",
    }
    if interval:
        panel["interval"] = interval
    return panel


def table(
    title: str,
    query: str,
    *,
    description: str = "",
    transformations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A table panel of one InfluxQL ``query`` (its rows as they come)."""
    return {
        "datasource": DATASOURCE,
        "description": description,
        "fieldConfig": {"defaults": {"custom": {"align": "auto"}}, "overrides": []},
        "options": {"cellHeight": "sm", "showHeader": True},
        "targets": [target(query, "A", result_format="table")],
        "title": title,
        "transformations": transformations or [],
        "type": "table",
    }


def stat_text(title: str, query: str, description: str = "") -> dict[str, Any]:
    """A stat panel showing the last text value."""
    return {
        "datasource": DATASOURCE,
        "description": description,
        "fieldConfig": {"defaults": {"thresholds": _thresholds(None)}, "overrides": []},
        "options": {
            "colorMode": "none",
            "graphMode": "none",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "/.*/", "values": False},
            "textMode": "value",
        },
        "targets": [target(query, "A", result_format="table")],
        "title": title,
        "type": "stat",
    }


def _by_ref_threshold(ref: str, lim: TagLimits) -> dict[str, Any]:
    return {
        "matcher": {"id": "byFrameRefID", "options": ref},
        "properties": [
            {"id": "thresholds", "value": _thresholds(lim)},
            {"id": "custom.thresholdsStyle", "value": {"mode": "dashed"}},
        ],
    }


def _color_override(ref: str, color: str) -> dict[str, Any]:
    return {
        "matcher": {"id": "byFrameRefID", "options": ref},
        "properties": [{"id": "color", "value": {"fixedColor": color, "mode": "fixed"}}],
    }


# --- dashboards ----------------------------------------------------------------------------


def _variables(cfg: PlantConfig) -> dict[str, Any]:
    def custom(name: str, label: str, values: Iterable[str]) -> dict[str, Any]:
        vals = list(dict.fromkeys(values))
        return {
            "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "includeAll": True,
            "label": label,
            "multi": True,
            "name": name,
            "options": [],
            "query": ",".join(vals),
            "type": "custom",
        }

    return {
        "list": [
            custom("room", "Room", (r.id for r in cfg.rooms)),
            custom("tag", "Tag", (tag_signal(t) for t in cfg.tags)),
        ]
    }


def _dashboard(
    cfg: PlantConfig, name: str, title: str, board: _Board, extra_tags: Sequence[str]
) -> dict[str, Any]:
    return {
        "annotations": {"list": []},
        "description": "Generated by `python -m gmp_edge.dashboards` from the plant "
        f"configuration of "
        f"{cfg.site.name or cfg.site.id}; do not edit in Grafana (changes are overwritten).",
        "editable": False,
        "graphTooltip": 1,
        "links": [
            {
                "asDropdown": False,
                "includeVars": True,
                "keepTime": True,
                "tags": ["gmp-edge"],
                "title": "gmp-edge",
                "type": "dashboards",
            }
        ],
        "panels": board.panels,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["gmp-edge", *extra_tags],
        "templating": _variables(cfg),
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "utc",
        "title": f"{title} — {cfg.site.name or cfg.site.id}",
        "uid": stable_uid(name, cfg.site.id),
        "version": 1,
        "weekStart": "",
    }


def _limits_by_tag(ls: LimitSet) -> dict[str, list[TagLimits]]:
    out: dict[str, list[TagLimits]] = {}
    for lim in ls.limits:
        out.setdefault(lim.tag, []).append(lim)
    return out


def _tag_panels(
    cfg: PlantConfig,
    tag: Tag,
    limits: dict[str, list[TagLimits]],
    title: str,
    no_limits: str = "No limits configured.",
) -> list[dict[str, Any]]:
    """One panel per limit entry of the tag (one without thresholds if it has none)."""
    entries: list[TagLimits | None] = list(limits.get(tag.path, [])) or [None]
    panels = []
    for lim in entries:
        t = title
        if lim is not None and lim.applies_in is not None:
            t += f" ({', '.join(sorted(lim.applies_in))})"
        desc = f"`{tag.path}` ({tag.unit or 'no unit'}). "
        desc += f"Limits: {limits_text(lim)}. " if lim is not None else f"{no_limits} "
        panels.append(
            timeseries(
                t,
                [target(envelope_query(cfg, tag), "A", alias="$col")],
                unit=grafana_unit(tag.unit),
                lim=lim,
                description=desc + _GOOD_ONLY,
            )
        )
    return panels


def _alarm_table(cfg: PlantConfig) -> dict[str, Any]:
    q = (
        'SELECT last("state") AS "state", "event", "value", "limit", "actor" FROM "alarm_event" '
        f'WHERE "room" =~ /^$room$/ AND time > now() - {ACTIVE_ALARM_LOOKBACK} '
        'GROUP BY "room", "tag", "kind", "priority"'
    )
    return table(
        "Active alarms",
        q,
        description="The latest alarm event per room, tag, kind and priority whose state is not "
        f"'normal' (events of the last {ACTIVE_ALARM_LOOKBACK}). The time column is when the "
        "alarm entered that state (one selector: the other columns come from the same event). "
        "Acknowledge, shelve and review on the gmp-edge web page.",
        transformations=[
            {
                "id": "filterByValue",
                "options": {
                    "filters": [
                        {
                            "config": {"id": "equal", "options": {"value": "normal"}},
                            "fieldName": "state",
                        }
                    ],
                    "match": "any",
                    "type": "exclude",
                },
            }
        ],
    )


def _deviation_table() -> dict[str, Any]:
    q = (
        'SELECT "id", "action", "status", "actor" FROM "deviation_event" '
        'WHERE "room" =~ /^$room$/ AND $timeFilter GROUP BY "room", "classification"'
    )
    return table(
        "Deviation events",
        q,
        description="Every deviation lifecycle event in the time range (raised, classified, "
        "investigated, closed). The gmp-edge API holds the deviation record itself.",
    )


def _completeness_panels(cfg: PlantConfig) -> list[dict[str, Any]]:
    polled: list[dict[str, Any]] = []
    event: list[dict[str, Any]] = []
    for tag in cfg.tags:
        exp = expected_points_per_minute(cfg, tag)
        name = f"{tag.segments[2]}/{tag.segments[3]}/{tag_signal(tag)}"
        if exp is not None:
            # % = good points * 100 / (interval_min * exp) = count * 6e6 / (exp * interval_ms)
            factor = 100 * 60_000 / exp
            q = (
                f'SELECT count("quality_code") * {_fmt(factor)} / $__interval_ms AS "completeness" '
                f'FROM "reading" WHERE {tag_where(cfg, tag)} AND "quality" = \'good\' AND '
                f"{VAR_FILTER} AND $timeFilter GROUP BY time($__interval) fill(0)"
            )
            polled.append(target(q, _ref(len(polled)), alias=name))
        else:
            q = (
                'SELECT count("quality_code") AS "good" '
                f'FROM "reading" WHERE {tag_where(cfg, tag)} AND "quality" = \'good\' AND '
                f"{VAR_FILTER} AND $timeFilter GROUP BY time($__interval) fill(0)"
            )
            event.append(target(q, _ref(len(event)), alias=name))
    expected = {
        "mode": "absolute",
        "steps": [
            {"color": ACTION_COLOR, "value": None},
            {"color": NORMAL_COLOR, "value": 100},
        ],
    }
    panels = []
    if polled:
        p = timeseries(
            "Data completeness — polled tags (% of expected good points)",
            polled,
            unit="percent",
            description="Good points per interval as a percentage of the points the polling "
            "plan expects (60 / poll_interval_s per minute for the device). Below 100 % means "
            "missed polls, Bad/Uncertain readings or a gap; the newest interval is partial. "
            "Filtered by the room and tag variables.",
            interval="1m",
        )
        p["fieldConfig"]["defaults"]["thresholds"] = expected
        p["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"] = {"mode": "dashed"}
        p["fieldConfig"]["defaults"]["custom"]["axisSoftMin"] = 0
        p["fieldConfig"]["defaults"]["custom"]["axisSoftMax"] = 100
        panels.append(p)
    if event:
        panels.append(
            timeseries(
                "Good points per interval — event-driven tags",
                event,
                description="Particle-counter records (one per sample period, set on the "
                "device) and OPC UA subscriptions (one point per change) have no rate the "
                "configuration fixes: the count of good points shows where data stopped. "
                "Filtered by the room and tag variables.",
                draw="bars",
                interval="1m",
            )
        )
    return panels


def cleanroom_dashboard(cfg: PlantConfig, ls: LimitSet | None = None) -> dict[str, Any]:
    """Cleanroom status: alarms, DP cascade, one row per room, data completeness."""
    ls = ls if ls is not None else build_limit_set(cfg, "dashboards", 0)
    limits = _limits_by_tag(ls)
    board = _Board()
    board.row("Alarms and deviations")
    board.add(_alarm_table(cfg), w=14, h=8)
    board.add(_deviation_table(), w=10, h=8)

    dp_tags = [t for t in cfg.tags if t.kind.value == "dp"]
    if dp_tags:
        targets = []
        overrides = []
        for i, tag in enumerate(dp_tags):
            ref = _ref(i)
            targets.append(target(envelope_query(cfg, tag), ref, alias=f"{tag_signal(tag)} $col"))
            for lim in limits.get(tag.path, [])[:1]:
                overrides.append(_by_ref_threshold(ref, lim))
        texts = [
            f"{t.path}: " + "; ".join(limits_text(lim) for lim in limits[t.path])
            for t in dp_tags
            if t.path in limits
        ]
        board.row("Differential pressure cascade")
        board.add(
            timeseries(
                "DP cascade — all rooms",
                targets,
                unit="pressurepa",
                description="Every differential-pressure pair of the plant, minimum and "
                "maximum per interval, each with its own limits: " + " | ".join(texts) + ". "
                "Good-quality readings only.",
                overrides=overrides,
            ),
            w=24,
            h=9,
        )

    for room in cfg.rooms:
        tags = [t for t in cfg.tags if t.segments[2] == room.id and t.kind.value in ROOM_KINDS]
        if not tags:
            continue
        tags.sort(key=lambda t: ROOM_KINDS.index(t.kind.value))
        grade = f" — grade {room.grade.value}" if room.grade is not None else ""
        board.row(f"{room.name or room.id}{grade}")
        for tag in tags:
            title = f"{_KIND_TITLES[tag.kind.value]} — {tag_signal(tag)} ({tag.segments[3]})"
            for panel in _tag_panels(cfg, tag, limits, title):
                board.add(panel, w=12, h=8)

    board.row("Data completeness")
    for panel in _completeness_panels(cfg):
        board.add(panel, w=24, h=9)
    return _dashboard(cfg, "cleanroom", "Cleanroom status", board, ["cleanroom"])


def press_dashboard(cfg: PlantConfig, ls: LimitSet | None = None) -> dict[str, Any]:
    """Tablet press parameters with their validated ranges as thresholds, per press."""
    ls = ls if ls is not None else build_limit_set(cfg, "dashboards", 0)
    limits = _limits_by_tag(ls)
    board = _Board()
    presses = [e for e in cfg.equipment if e.kind == "tablet_press"]
    for press in presses:
        tags = [t for t in cfg.tags if t.segments[3] == press.id]
        if not tags:
            continue
        board.row(f"{press.name or press.id} ({press.room})")
        for kind in ("state", "batch_id"):
            for tag in (t for t in tags if t.kind.value == kind):
                q = (
                    'SELECT last("value_text") AS "value" FROM "reading" '
                    f"WHERE {tag_where(cfg, tag)} AND $timeFilter"
                )
                title = "Production state" if kind == "state" else "Batch"
                board.add(stat_text(title, q, f"`{tag.path}`: the last value."), w=6, h=4)
        params = [t for t in tags if t.kind.value == "press_parameter"]
        known = [t for s in PRESS_SIGNALS for t in params if tag_signal(t) == s]
        others = [t for t in params if t not in known]
        board._newline()
        for tag in [*known, *others]:
            title = tag_signal(tag).replace("_", " ").capitalize()
            no_range = "No validated range configured (add a [[limits]] entry for this tag)."
            for panel in _tag_panels(cfg, tag, limits, title, no_range):
                board.add(panel, w=12, h=8)
    return _dashboard(cfg, "press", "Tablet press", board, ["press"])


def _per_device(title: str, query: str, description: str, draw: str = "line") -> dict[str, Any]:
    # The health board's per-device counts: one series per equipment, 1-minute buckets.
    return timeseries(
        title,
        [target(query, "A", alias="$tag_equipment")],
        description=description,
        draw=draw,
        interval="1m",
    )


def health_dashboard(cfg: PlantConfig) -> dict[str, Any]:
    """The edge box: points per minute, quality ratio, bad points per device."""
    site = f'"site" = {influx_str(cfg.site.id)}'
    flt = f"{site} AND {VAR_FILTER} AND $timeFilter"
    board = _Board()
    board.row("Throughput and quality")
    per_min = (
        'SELECT count("quality_code") * 60000 / $__interval_ms AS "points_per_min" '
        f'FROM "reading" WHERE {flt} GROUP BY time($__interval), "equipment" fill(0)'
    )
    board.add(
        _per_device(
            "Points per minute, per device",
            per_min,
            "Readings the forwarder delivered per minute (all qualities), by device "
            "(equipment). A drop to zero is a gap: check the gap ledger.",
        ),
        w=12,
    )
    qual_targets = []
    overrides = []
    for i, (q, color) in enumerate(
        (("good", NORMAL_COLOR), ("uncertain", "yellow"), ("bad", ACTION_COLOR))
    ):
        ref = _ref(i)
        qual_targets.append(
            target(
                f'SELECT count("quality_code") AS "{q}" FROM "reading" WHERE {flt} '
                f'AND "quality" = {influx_str(q)} GROUP BY time($__interval) fill(0)',
                ref,
                alias=q,
            )
        )
        overrides.append(_color_override(ref, color))
    board.add(
        timeseries(
            "Quality ratio",
            qual_targets,
            description="Share of Good, Uncertain and Bad points per interval (stacked to "
            "100 %). Any Bad share is a reading the limit engine could not evaluate.",
            overrides=overrides,
            stacking="percent",
            interval="1m",
        ),
        w=12,
    )
    bad = (
        'SELECT count("quality_code") AS "bad" FROM "reading" '
        f'WHERE {flt} AND "quality" = \'bad\' GROUP BY time($__interval), "equipment" fill(0)'
    )
    board.row("Devices")
    board.add(
        _per_device(
            "Bad points per device",
            bad,
            "Bad readings (failed reads, out-of-range values, lost connections) per device "
            "and interval.",
            draw="bars",
        ),
        w=12,
    )
    last_q = (
        'SELECT last("quality_code") AS "quality_code", "quality", "message" FROM "reading" '
        f'WHERE {flt} GROUP BY "equipment", "tag"'
    )
    board.add(
        table(
            "Last point per device and tag",
            last_q,
            description="The newest point of every series in the range with its quality and "
            "message; an old time means the tag stopped reporting.",
        ),
        w=12,
    )
    bad_total = (
        'SELECT count("quality_code") AS "bad_points", last("message") AS "last_message" '
        f'FROM "reading" WHERE {flt} AND "quality" = \'bad\' GROUP BY "equipment"'
    )
    board.add(
        table(
            "Bad points in range, per device",
            bad_total,
            description="Total Bad points per device over the time range, with the last "
            "failure message.",
        ),
        w=24,
        h=7,
    )
    return _dashboard(cfg, "health", "Edge box health", board, ["health"])


def build_dashboards(cfg: PlantConfig) -> dict[str, dict[str, Any]]:
    """File name -> dashboard JSON for the plant configuration."""
    ls = build_limit_set(cfg, "dashboards", 0)
    return {
        "cleanroom-status.json": cleanroom_dashboard(cfg, ls),
        "tablet-press.json": press_dashboard(cfg, ls),
        "edge-health.json": health_dashboard(cfg),
    }


def render(dashboard: dict[str, Any]) -> str:
    """The committed text form: sorted keys, two-space indent, trailing newline."""
    return json.dumps(dashboard, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
