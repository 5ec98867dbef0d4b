"""GET /metrics: typed metric families rendered by prometheus-client, read back by its parser."""

from __future__ import annotations

import warnings
from dataclasses import fields

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gmp_edge.api.metrics import STORE_FIGURES, Families, registry_of, render
from gmp_edge.audit.trail import AuditTrail
from gmp_edge.edge.api_wiring import build_api
from gmp_edge.edge.service import EdgeService, StoreHealth
from gmp_edge.historian.store import Store
from gmp_edge.identity.roles import Role

from .conftest import COUNTER, TRH, small_plant

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def parsed(text: str) -> dict[str, tuple[str, str, list[tuple[str, dict[str, str], float]]]]:
    """name -> (type, help, samples) as Prometheus' own parser reads the text."""
    return {
        f.name: (f.type, f.documentation, [(s.name, s.labels, s.value) for s in f.samples])
        for f in text_string_to_metric_families(text)
    }


def test_help_text_and_label_values_round_trip_through_the_escaping():
    help_text = 'C:\\plant\\line 1\nsecond line with "quotes"'
    device = 'press "A"\\2\nnorth'
    m = Families()
    m.add("x_polls_total", "counter", help_text, 3, {"device": device})
    m.add("x_up", "gauge", help_text, True, {"device": device})
    text = render(registry_of(lambda: m)).decode()
    assert "\\\\plant" in text and "\\n" in text  # escaped on the wire, one line per entry
    got = parsed(text)
    assert got["x_polls"] == ("counter", help_text, [("x_polls_total", {"device": device}, 3.0)])
    assert got["x_up"] == ("gauge", help_text, [("x_up", {"device": device}, 1.0)])


def test_samples_of_one_name_share_its_kind_and_labels():
    m = Families()
    with pytest.raises(ValueError, match="_total"):
        m.add("x_polls", "counter", "polls", 1)
    m.add("x_lag", "gauge", "lag", 1.5, {"device": "a"})
    m.add("x_lag", "gauge", "lag", None, {"device": "b"})  # unknown is left out, not zero
    with pytest.raises(ValueError, match="first added"):
        m.add("x_lag", "counter", "lag", 2)
    with pytest.raises(ValueError, match="first added"):
        m.add("x_lag", "gauge", "lag", 2, {"room": "r"})
    m.add("x_lag", "gauge", "lag", 2, {"device": "c"})
    [fam] = list(m)
    got = [(s.labels, s.value) for s in fam.samples]
    assert got == [({"device": "a"}, 1.5), ({"device": "c"}, 2.0)]


def test_every_numeric_store_figure_has_a_declared_kind():
    # a figure added to StoreHealth must say whether it is a counter or a gauge; the last
    # commit time is served as a timestamp string and the error as text, neither is a series
    numeric = {f.name for f in fields(StoreHealth)} - {"last_commit_us", "error"}
    assert numeric <= set(STORE_FIGURES)


@pytest.fixture
def scrape(tmp_path):
    cfg, sha = small_plant().load(tmp_path)
    store = Store(cfg.store.path)
    trail = AuditTrail(cfg.store.path)
    service = EdgeService(cfg, sha, store)
    service.forwarders["influxdb"] = lambda: {
        "destination": "http://influx:8086",
        "sent": 12,
        "backlog": 3,
        "lag_s": 0.5,
        "failing": False,
        "last_error": None,
    }
    parts = build_api(cfg, service, trail)
    parts.directory.create_first_administrator("admin", "Ada Admin", "Vault-Keeper-2026!")
    token = parts.directory.create_token("admin", "prometheus", Role.VIEWER, "scraping")
    c = TestClient(parts.app, base_url="http://127.0.0.1")
    c.headers["Authorization"] = f"Bearer {token}"
    yield c
    parts.close()
    trail.close()
    store.close()


def test_the_service_metrics_are_typed_and_keep_their_published_names(scrape):
    r = scrape.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    got = parsed(r.text)
    types = {name: kind for name, (kind, _, _) in got.items()}
    # counters: the family name without _total, the series with it
    for name in (
        "gmp_edge_store_committed",
        "gmp_edge_store_commits",
        "gmp_edge_store_failed_commits",
        "gmp_edge_device_polls",
        "gmp_edge_device_failed_polls",
        "gmp_edge_device_missed_polls",
        "gmp_edge_device_readings",
        "gmp_edge_device_disconnects",
        "gmp_edge_evaluated_readings",
    ):
        assert types[name] == "counter", name
        assert all(s[0] == name + "_total" for s in got[name][2]), name
    for name in (
        "gmp_edge_store_pending",
        "gmp_edge_store_backpressure_waits",
        "gmp_edge_device_connected",
        "gmp_edge_evaluation_lag_readings",
        "gmp_edge_active_alarms",
        "gmp_edge_open_deviations",
        "gmp_edge_forward_sent",
        "gmp_edge_forward_backlog",
        "gmp_edge_forward_lag_s",
        "gmp_edge_forward_failing",
    ):
        assert types[name] == "gauge", name
    devices = {s[1]["device"] for s in got["gmp_edge_device_connected"][2]}
    assert {TRH, COUNTER} <= devices
    assert got["gmp_edge_device_connected"][2][0][1].keys() == {"device", "protocol"}
    assert got["gmp_edge_forward_sent"][2] == [
        ("gmp_edge_forward_sent", {"destination": "influxdb"}, 12.0)
    ]
    assert got["gmp_edge_store_committed"][2] == [("gmp_edge_store_committed_total", {}, 0.0)]
    # text fields of a status (destination URL, last error) are not series
    assert "gmp_edge_forward_destination" not in got and "gmp_edge_store_path" not in got
