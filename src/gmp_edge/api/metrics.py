"""The service's own health for Prometheus (``GET /metrics``).

Every scrape builds typed metric families afresh from the runtime and the status service;
prometheus-client renders them (``generate_latest``), escaping HELP text and label values.
Whether a series is a counter or a gauge is declared here, never guessed from its name.
Devices and destinations are labels, so one scrape config covers any plant.

The series names are a published interface (dashboards and alert rules use them): a counter's
name ends in ``_total``, and a count first published as a gauge stays one under its name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Literal

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from gmp_edge.api.runtime import Runtime
from gmp_edge.clock import now_us
from gmp_edge.services.status import StatusService

Kind = Literal["counter", "gauge"]
_Family = CounterMetricFamily | GaugeMetricFamily

#: What ``generate_latest`` writes: the classic text format, version 0.0.4 (newer releases of
#: prometheus-client name this value differently, so it is spelled out here).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: The committer's figures (``Runtime.store_health``), exposed as ``gmp_edge_store_<key>``.
STORE_FIGURES: dict[str, tuple[Kind, str]] = {
    "committed": ("counter", "readings committed to the local store"),
    "commits": ("counter", "commit transactions on the local store"),
    "failed_commits": ("counter", "commit transactions on the local store that failed"),
    "pending": ("gauge", "readings waiting to be committed to the local store"),
    "last_commit_ms": ("gauge", "duration of the last commit to the local store, ms"),
    # a count, but published as a gauge under this name: renaming it would break scrapes
    "backpressure_waits": ("gauge", "times collection waited for the local store to catch up"),
}

#: A device's counters (``DeviceStatus`` attributes), exposed as ``gmp_edge_device_<key>_total``.
DEVICE_COUNTERS: dict[str, str] = {
    "polls": "polls of the device",
    "failed_polls": "polls of the device that failed",
    "missed_polls": "poll slots of the device missed because a poll ran late",
    "readings": "readings taken from the device",
    "disconnects": "times the connection to the device was lost",
}


class Families:
    """The metric families of one scrape, filled sample by sample, in first-seen order."""

    def __init__(self) -> None:
        self._families: dict[str, tuple[_Family, tuple[str, ...]]] = {}

    def add(
        self,
        name: str,
        kind: Kind,
        help_text: str,
        value: float | bool | None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        """One sample (None is skipped: unknown is not zero).

        ``name`` is the series name as scraped, so a counter's ends in ``_total``. Samples of
        one name share its kind, help text and label names (the first sample sets them).
        """
        if value is None:
            return
        labels = labels or {}
        known = self._families.get(name)
        if known is None:
            family: _Family
            if kind == "counter":
                if not name.endswith("_total"):
                    raise ValueError(f"counter {name!r} must end in _total")
                # the family is named without the suffix; prometheus-client appends it
                family = CounterMetricFamily(name, help_text, labels=list(labels))
            else:
                family = GaugeMetricFamily(name, help_text, labels=list(labels))
            known = (family, tuple(labels))
            self._families[name] = known
        family, label_names = known
        if family.type != kind or set(labels) != set(label_names):
            raise ValueError(f"{name!r} was first added as a {family.type} with {label_names}")
        family.add_metric([str(labels[k]) for k in label_names], float(value))

    def __iter__(self) -> Iterator[Metric]:
        return (family for family, _ in self._families.values())


class ScrapeCollector:
    """A prometheus-client collector that builds its families when it is scraped."""

    def __init__(self, build: Callable[[], Iterable[Metric]]) -> None:
        self._build = build

    def collect(self) -> Iterable[Metric]:
        """The families as of now (prometheus-client calls this on every scrape)."""
        return list(self._build())


def registry_of(build: Callable[[], Iterable[Metric]]) -> CollectorRegistry:
    """A registry of its own (not the process-wide default) holding one scrape collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ScrapeCollector(build))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The exposition text of ``registry`` (served as ``CONTENT_TYPE``)."""
    return generate_latest(registry)


def _numbers(values: Mapping[str, object]) -> Iterator[tuple[str, float]]:
    """Numeric entries of a status dict (bool is an int: True -> 1.0); others are left out."""
    for k, v in values.items():
        if isinstance(v, int | float):
            yield k, float(v)


def service_families(rt: Runtime, status: StatusService) -> Families:
    """Store, devices, monitoring, notifications and forwarding, as of now."""
    m = Families()
    for key, value in _numbers(rt.store_health()):
        kind, help_text = STORE_FIGURES.get(key, ("gauge", f"local store: {key}"))
        name = f"gmp_edge_store_{key}" + ("_total" if kind == "counter" else "")
        m.add(name, kind, help_text, value)
    now = now_us()
    for s in rt.device_statuses():
        lab = {"device": s.device_id, "protocol": s.protocol}
        connected = s.state.value == "connected"
        m.add("gmp_edge_device_connected", "gauge", "1 if connected", connected, lab)
        for key, help_text in DEVICE_COUNTERS.items():
            m.add(f"gmp_edge_device_{key}_total", "counter", help_text, getattr(s, key), lab)
        if s.last_good_us is not None:
            lag = (now - s.last_good_us) / 1e6
            m.add("gmp_edge_device_lag_seconds", "gauge", "since the last good poll", lag, lab)
    st = status.stats
    m.add("gmp_edge_evaluated_readings_total", "counter", "readings evaluated", st.readings)
    m.add(
        "gmp_edge_evaluation_lag_readings",
        "gauge",
        "committed, not yet evaluated",
        st.lag_readings,
    )
    m.add(
        "gmp_edge_alarm_latency_p99_ms",
        "gauge",
        "commit -> alarm persisted",
        st.as_dict()["alarm_latency_ms_p99"],
    )
    # the box's own health, the same verdict as GET /api/health; alarms are separate figures
    verdict = status.health(rt.health_inputs(now), status.notifications())
    for level in ("starting", "ok", "degraded", "failed"):
        m.add(
            "gmp_edge_health",
            "gauge",
            "1 for the current health status (starting, ok, degraded, failed), else 0",
            verdict.status == level,
            {"status": level},
        )
    for code in sorted({r.code for r in verdict.reasons}):
        n = sum(1 for r in verdict.reasons if r.code == code)
        m.add(
            "gmp_edge_health_reasons",
            "gauge",
            "reasons health is not ok, by code",
            n,
            {"code": code},
        )
    alarms = status.alarm_summary()
    m.add("gmp_edge_active_alarms", "gauge", "alarms not in normal state", alarms["active"])
    m.add(
        "gmp_edge_unacknowledged_alarms",
        "gauge",
        "active alarms not acknowledged",
        alarms["unacknowledged"],
    )
    m.add("gmp_edge_open_deviations", "gauge", "deviations open", status.open_deviations())
    notifications = status.notifications()
    if notifications is not None:
        dropped = notifications.get("dropped")
        m.add("gmp_edge_notifications_dropped_total", "counter", "notifications dropped", dropped)
    for dest, forwarding in rt.forwarder_statuses().items():
        for key, value in _numbers(forwarding):
            # gauges since the first release, counts among them: the names stay as published
            m.add(
                f"gmp_edge_forward_{key}",
                "gauge",
                f"forwarding to a destination: {key}",
                value,
                {"destination": dest},
            )
    return m
