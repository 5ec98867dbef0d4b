"""Generated Grafana dashboards: queries, tags, thresholds, UIDs, committed files, deploy files."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from gmp_edge.config import PlantConfig
from gmp_edge.dashboards.__main__ import differences, generated
from gmp_edge.dashboards.__main__ import main as cli_main
from gmp_edge.dashboards.generate import (
    DATASOURCE_NAME,
    DATASOURCE_UID,
    FIELD_KEYS,
    TAG_KEYS,
    build_dashboards,
    expected_points_per_minute,
    threshold_steps,
)
from gmp_edge.edge.config import load_config
from gmp_edge.limits.model import TagLimits, Threshold
from gmp_edge.monitoring.setup import build_limit_set

from .conftest import COMPRESSION, CORRIDOR, COUNTER, PRESS, SITE, SPEED, TEMP, TRH, small_plant

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "plant.toml"
DOCKER_PLANT = ROOT / "deploy" / "docker-plant.toml"
DASH_DIR = ROOT / "deploy" / "grafana" / "dashboards"
DEPLOY = ROOT / "deploy"


GRANULATION = "granulation"
DP = "dp-01"
DP_GRAN = f"{SITE}/solid-dose/{GRANULATION}/{DP}/dp_granulation_corridor"  # preset dp_min only
FLOW = f"{SITE}/solid-dose/{COMPRESSION}/{COUNTER}/flow"  # polled every 2 s
PARTICLES = f"{SITE}/solid-dose/{COMPRESSION}/{COUNTER}/particles_0_5"  # from records


def dashboard_plant() -> PlantConfig:
    """The small plant with what every dashboard panel kind needs: a second room with a
    pair of DP transmitters to the corridor (one limited by a preset alone), a polled status
    and an unclassified signal, and the press parameters the press dashboard shows."""
    b = small_plant()
    b.room(GRANULATION, "D", adjacent=[CORRIDOR], iso_class=8)
    b.modbus(DP, GRANULATION, "dp_transmitter", unit_id=3)
    for signal in ("dp_granulation_corridor", "dp_compression_corridor"):
        b.tag(DP, signal, "dp", "Pa", valid_min=-1250.0, valid_max=1250.0)
    b.limit(DP_GRAN, preset="dp_min", priority="high")
    b.tag(
        COUNTER,
        "flow",
        "status",
        "CFM",
        modbus={"address": 22, "data_type": "uint16", "scale": 0.01},
    )
    b.tag(TRH, "dew_point", "other", "degC")
    for signal, unit in (
        ("pre_compression_force", "kN"),
        ("ejection_force", "N"),
        ("tablet_weight", "mg"),
        ("hardness", "N"),
    ):
        b.tag(PRESS, signal, "press_parameter", unit)
    cfg = b.build()
    assert {DP_GRAN, FLOW, PARTICLES} <= {t.path for t in cfg.tags}
    return cfg


@pytest.fixture(scope="module")
def cfg() -> PlantConfig:
    return dashboard_plant()


@pytest.fixture(scope="module")
def boards(cfg: PlantConfig) -> dict[str, dict[str, Any]]:
    return build_dashboards(cfg)


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in board["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return [p for p in out if p["type"] != "row"]


def all_targets(boards: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{name}:{p['title']}:{t['refId']}", t)
        for name, b in boards.items()
        for p in panels(b)
        for t in p["targets"]
    ]


# --- small query parser (enough for the queries the generator writes) -------------------

FROM = re.compile(r'\bFROM "(\w+)"')
FUNC_FIELD = re.compile(r'\b(?:min|max|mean|last|count|first|sum)\("(\w+)"\)')
EQ = re.compile(r'"(\w+)" = \'([^\']*)\'')
REGEX = re.compile(r'"(\w+)" =~ /')
GROUP_TAGS = re.compile(r"GROUP BY (.*?)(?: fill\(|$)")


def query_parts(q: str) -> dict[str, Any]:
    select = q.split(" FROM ")[0].removeprefix("SELECT ")
    plain = [
        m for m in re.findall(r'(?:^|, )"(\w+)"', select) if not re.search(rf'AS "{m}"', select)
    ]
    group = GROUP_TAGS.search(q)
    group_tags = re.findall(r'"(\w+)"', group.group(1)) if group else []
    measurement = FROM.search(q)
    assert measurement is not None, q
    return {
        "measurement": measurement.group(1),
        "fields": FUNC_FIELD.findall(select) + plain,
        "eq": EQ.findall(q),
        "regex": REGEX.findall(q),
        "group_tags": group_tags,
    }


def test_query_parser_reads_a_generated_query() -> None:
    q = (
        'SELECT last("state") AS "state", "event" FROM "alarm_event" WHERE "room" =~ /^$room$/ '
        'AND time > now() - 1d GROUP BY "room", "tag"'
    )
    p = query_parts(q)
    assert p["measurement"] == "alarm_event"
    assert p["fields"] == ["state", "event"]
    assert p["regex"] == ["room"]
    assert p["group_tags"] == ["room", "tag"]


def test_every_target_reads_a_known_measurement_and_existing_fields(boards: Any) -> None:
    targets = all_targets(boards)
    assert len(targets) > 30
    for where, t in targets:
        p = query_parts(t["query"])
        m = p["measurement"]
        assert m in FIELD_KEYS, where
        assert p["fields"], where
        assert set(p["fields"]) <= FIELD_KEYS[m], (where, p["fields"])
        for key, _ in p["eq"]:
            assert key in TAG_KEYS[m] | FIELD_KEYS[m], (where, key)
        assert set(p["regex"]) <= TAG_KEYS[m], where
        assert set(p["group_tags"]) <= TAG_KEYS[m], where
        assert t["datasource"] == {"type": "influxdb", "uid": DATASOURCE_UID}, where
        assert t["rawQuery"] is True
        if "GROUP BY time(" in t["query"] or m == "deviation_event":
            assert "$timeFilter" in t["query"], where


def test_every_panel_uses_the_provisioned_datasource(boards: Any) -> None:
    for b in boards.values():
        for p in panels(b):
            assert p["datasource"]["uid"] == DATASOURCE_UID


def test_every_tag_in_a_panel_exists_in_the_config(cfg: PlantConfig, boards: Any) -> None:
    known = {(t.segments[2], t.segments[3], t.segments[4]): t.path for t in cfg.tags}
    used = set()
    for where, t in all_targets(boards):
        eq = dict(query_parts(t["query"])["eq"])
        if "tag" in eq:
            key = (eq["room"], eq["equipment"], eq["tag"])
            assert key in known, (where, key)
            assert eq["site"] == cfg.site.id, where
            used.add(known[key])
    # and every configured tag shows up somewhere (completeness covers all of them)
    assert used == {t.path for t in cfg.tags}


def _panel_tag(cfg: PlantConfig, panel: dict[str, Any]) -> str | None:
    """The one configured tag a single-tag panel shows (None for multi-tag panels)."""
    paths: set[str] = set()
    for t in panel["targets"]:
        eq = dict(query_parts(t["query"])["eq"])
        if "tag" not in eq:
            return None
        paths.update(
            c.path for c in cfg.tags if c.segments[2:] == [eq["room"], eq["equipment"], eq["tag"]]
        )
    return paths.pop() if len(paths) == 1 else None


def _expected_steps(lim: TagLimits) -> list[float]:
    return [
        th.value
        for th in (lim.action_low, lim.alert_low, lim.alert_high, lim.action_high)
        if th is not None
    ]


def test_thresholds_equal_the_configured_limits_for_every_limited_tag(
    cfg: PlantConfig, boards: Any
) -> None:
    ls = build_limit_set(cfg, "test", 0)
    by_tag = {lim.tag: lim for lim in ls.limits}
    seen: dict[str, int] = {}
    for b in boards.values():
        for p in panels(b):
            if p["type"] != "timeseries":
                continue
            path = _panel_tag(cfg, p)
            if path is None:
                continue
            steps = p["fieldConfig"]["defaults"]["thresholds"]["steps"]
            values = [s["value"] for s in steps[1:]]
            if path in by_tag:
                seen[path] = seen.get(path, 0) + 1
                assert values == _expected_steps(by_tag[path]), (p["title"], path)
                assert p["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] != "off"
            else:
                assert values == [], (p["title"], "thresholds on a tag without limits")
    assert set(seen) == set(by_tag), "every limited tag has a panel with its thresholds"


def test_dp_cascade_overrides_carry_each_pairs_limits(cfg: PlantConfig, boards: Any) -> None:
    ls = build_limit_set(cfg, "test", 0)
    by_tag = {lim.tag: lim for lim in ls.limits}
    (cascade,) = [p for p in panels(boards["cleanroom-status.json"]) if "cascade" in p["title"]]
    dp_tags = [t for t in cfg.tags if t.kind.value == "dp"]
    assert len(cascade["targets"]) == len(dp_tags)
    overrides = {o["matcher"]["options"]: o for o in cascade["fieldConfig"]["overrides"]}
    for t, tag in zip(cascade["targets"], dp_tags, strict=True):
        assert dict(query_parts(t["query"])["eq"])["tag"] == tag.segments[4]
        if tag.path in by_tag:
            (th,) = [x for x in overrides[t["refId"]]["properties"] if x["id"] == "thresholds"]
            values = [s["value"] for s in th["value"]["steps"][1:]]
            assert values == _expected_steps(by_tag[tag.path])
        else:
            assert t["refId"] not in overrides


T = Threshold
THRESHOLD_CASES = [
    (None, [("green", None)]),
    (
        TagLimits("x", alert_high=T(1e6), action_high=T(3e6)),
        [("green", None), ("orange", 1e6), ("red", 3e6)],
    ),
    (
        TagLimits("x", alert_low=T(13), action_low=T(10)),
        [("red", None), ("orange", 10), ("green", 13)],
    ),
    (
        TagLimits("x", action_low=T(10)),
        [("red", None), ("green", 10)],
    ),
    (
        TagLimits("x", alert_low=T(18.5), action_low=T(18), alert_high=T(24), action_high=T(25)),
        [("red", None), ("orange", 18), ("green", 18.5), ("orange", 24), ("red", 25)],
    ),
    (TagLimits("x", alert_low=T(5, True)), [("orange", None), ("green", 5)]),
]


@pytest.mark.parametrize(("lim", "expected"), THRESHOLD_CASES)
def test_threshold_steps(lim: TagLimits | None, expected: list[tuple[str, float | None]]) -> None:
    steps = threshold_steps(lim)
    assert [(s["color"], s["value"]) for s in steps] == expected


def test_preset_limits_come_from_the_limit_set(cfg: PlantConfig, boards: Any) -> None:
    # dp_granulation_corridor has only `preset = "dp_min"` in its limits: 10 / 13 Pa
    (p,) = [
        p
        for p in panels(boards["cleanroom-status.json"])
        if p["title"].startswith("Differential pressure — dp_granulation_corridor")
    ]
    assert [s["value"] for s in p["fieldConfig"]["defaults"]["thresholds"]["steps"]] == [
        None,
        10.0,
        13.0,
    ]


def test_press_dashboard_has_the_press_parameters(boards: Any) -> None:
    titles = [p["title"] for p in panels(boards["tablet-press.json"])]
    for want in (
        "Main compression force",
        "Pre compression force",
        "Turret speed",
        "Tablet weight",
        "Hardness",
        "Ejection force",
    ):
        assert any(t.startswith(want) for t in titles), want


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        (TEMP, 60.0),  # polled every second
        (FLOW, 30.0),
        (PARTICLES, None),  # records
        (SPEED, None),  # subscription
    ],
)
def test_expected_points_per_minute(cfg: PlantConfig, tag: str, expected: float | None) -> None:
    t = next(x for x in cfg.tags if x.path == tag)
    assert expected_points_per_minute(cfg, t) == expected


def test_completeness_factor_matches_the_poll_interval(cfg: PlantConfig, boards: Any) -> None:
    (p,) = [p for p in panels(boards["cleanroom-status.json"]) if p["title"].startswith("Data c")]
    for t in p["targets"]:
        eq = dict(query_parts(t["query"])["eq"])
        tag = next(
            c for c in cfg.tags if c.segments[2:] == [eq["room"], eq["equipment"], eq["tag"]]
        )
        exp = expected_points_per_minute(cfg, tag)
        assert exp is not None
        scaled = re.search(r"\* ([0-9.]+) / \$__interval_ms", t["query"])
        assert scaled is not None, t["query"]
        factor = float(scaled.group(1))
        assert factor == pytest.approx(100 * 60_000 / exp)
        assert ("quality", "good") in query_parts(t["query"])["eq"]


def test_uids_unique_stable_and_dashboards_in_utc(cfg: PlantConfig, boards: Any) -> None:
    uids = [b["uid"] for b in boards.values()]
    assert len(set(uids)) == len(uids)
    assert uids == [b["uid"] for b in build_dashboards(cfg).values()]
    assert sorted(uids) == [
        f"gmp-edge-cleanroom-{SITE}",
        f"gmp-edge-health-{SITE}",
        f"gmp-edge-press-{SITE}",
    ]
    for b in boards.values():
        assert len(b["uid"]) <= 40
        assert b["timezone"] == "utc"
        assert b["schemaVersion"] >= 36
        assert {v["name"] for v in b["templating"]["list"]} == {"room", "tag"}
        ids = [p["id"] for p in b["panels"]]
        assert len(set(ids)) == len(ids)


def test_long_site_ids_still_give_short_unique_uids(cfg: PlantConfig) -> None:
    site = cfg.site.model_copy(update={"id": "a-very-long-site-identifier-for-a-big-plant"})
    other = cfg.model_copy(update={"site": site})
    uids = [b["uid"] for b in build_dashboards(other).values()]
    assert all(len(u) <= 40 for u in uids)
    assert len(set(uids)) == 3


def test_room_variable_lists_the_configured_rooms(cfg: PlantConfig, boards: Any) -> None:
    var = next(
        v for v in boards["cleanroom-status.json"]["templating"]["list"] if v["name"] == "room"
    )
    assert var["query"].split(",") == [r.id for r in cfg.rooms]


def test_committed_json_equals_generated_json() -> None:
    problems = differences(generated(EXAMPLE), DASH_DIR)
    assert problems == [], (
        "regenerate: python -m gmp_edge.dashboards --config examples/plant.toml "
        "--out deploy/grafana/dashboards\n" + "\n".join(problems)
    )


def test_docker_plant_config_generates_the_same_dashboards() -> None:
    assert generated(DOCKER_PLANT) == generated(EXAMPLE)


def test_docker_plant_config_is_the_example_adapted() -> None:
    cfg = load_config(EXAMPLE)[0]
    dcfg = load_config(DOCKER_PLANT)[0]
    assert dcfg.api.host == "0.0.0.0"
    assert dcfg.store.path == Path("/var/lib/gmp-edge/gmp-edge.db")
    same = ("site", "areas", "rooms", "devices", "equipment", "tags", "limits", "production")
    for key in same:
        assert getattr(dcfg, key) == getattr(cfg, key), key


def test_cli_check_reports_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--config", str(EXAMPLE), "--out", str(tmp_path)]
    assert cli_main([*args, "--check"]) == 1  # nothing there yet
    assert cli_main(args) == 0
    assert cli_main([*args, "--check"]) == 0
    first = tmp_path / "cleanroom-status.json"
    first.write_text(first.read_text().replace('"utc"', '"browser"'))
    (tmp_path / "old.json").write_text("{}")
    capsys.readouterr()
    assert cli_main([*args, "--check"]) == 1
    err = capsys.readouterr().err
    assert "cleanroom-status.json: differs" in err
    assert "old.json: not generated" in err


def test_cli_refuses_a_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "plant.toml"
    bad.write_text("[site]\nid = 'x'\nbogus = 1\n")
    assert cli_main(["--config", str(bad), "--out", str(tmp_path), "--check"]) == 2


def test_generated_json_is_deterministic_text(cfg: PlantConfig) -> None:
    a = {k: json.dumps(v, sort_keys=True) for k, v in build_dashboards(cfg).items()}
    b = {k: json.dumps(v, sort_keys=True) for k, v in build_dashboards(cfg).items()}
    assert a == b


# --- deployment files (parsed, not run: no docker on the test machine) ------------------


def _yaml() -> Any:
    try:
        import yaml as mod
    except ImportError:  # pragma: no cover - depends on the environment
        pytest.skip(
            "PyYAML is not installed: the deploy YAML files are not parsed "
            "(install pyyaml to run this check; it is not a runtime dependency)"
        )
    return mod


def test_datasource_provisioning_names_the_datasource_the_dashboards_use(boards: Any) -> None:
    y = _yaml()
    doc = y.safe_load((DEPLOY / "grafana/provisioning/datasources/influxdb.yaml").read_text())
    (ds,) = doc["datasources"]
    assert ds["uid"] == DATASOURCE_UID
    assert ds["name"] == DATASOURCE_NAME
    assert ds["type"] == "influxdb"
    assert ds["jsonData"]["version"] == "InfluxQL"
    assert ds["jsonData"]["dbName"] == "gmp_edge"
    used = {p["datasource"]["uid"] for b in boards.values() for p in panels(b)}
    assert used == {ds["uid"]}


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = _yaml().safe_load((ROOT / "docker-compose.yml").read_text())
    return doc


def _host_path(spec: str) -> Path | None:
    src = spec.split(":")[0]
    return (ROOT / src).resolve() if src.startswith(".") else None


def test_compose_services_and_ports() -> None:
    c = _compose()
    assert set(c["services"]) == {"influxdb", "grafana", "mosquitto", "gmp-edge"}
    for name, svc in c["services"].items():
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
    assert c["services"]["influxdb"]["image"].startswith("influxdb:2.")
    assert "127.0.0.1:8000:8000" in c["services"]["gmp-edge"]["ports"]
    env = c["services"]["influxdb"]["environment"]
    assert env["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    assert env["DOCKER_INFLUXDB_INIT_BUCKET"] == "gmp_edge"
    for key in ("ORG", "ADMIN_TOKEN", "PASSWORD", "USERNAME"):
        assert f"DOCKER_INFLUXDB_INIT_{key}" in env
    genv = c["services"]["grafana"]["environment"]
    assert genv["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "INFLUXDB_READ_TOKEN" in genv  # the datasource provisioning reads it


def test_compose_mounts_and_build_reference_existing_files() -> None:
    c = _compose()
    named = set(c.get("volumes") or {})
    for name, svc in c["services"].items():
        for vol in svc.get("volumes", []):
            host = _host_path(vol)
            if host is None:
                assert vol.split(":")[0] in named, (name, vol)
            else:
                assert host.exists(), (name, vol)
    build = c["services"]["gmp-edge"]["build"]
    context = (ROOT / build["context"]).resolve()
    assert (context / build["dockerfile"]).is_file()
    assert (context / "pyproject.toml").is_file()


def test_compose_wires_provisioning_dashboards_and_dbrp_script() -> None:
    c = _compose()
    vols = c["services"]["grafana"]["volumes"]
    prov = next(v for v in vols if v.endswith(":/etc/grafana/provisioning:ro"))
    dash = next(v for v in vols if "/var/lib/grafana/dashboards" in v)
    assert _host_path(prov) == (DEPLOY / "grafana/provisioning").resolve()
    assert _host_path(dash) == DASH_DIR.resolve()
    provider = _yaml().safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/gmp-edge.yaml").read_text()
    )["providers"][0]
    assert provider["options"]["path"] == dash.split(":")[1]
    assert provider["allowUiUpdates"] is False
    init = next(v for v in c["services"]["influxdb"]["volumes"] if "initdb.d" in v)
    script = _host_path(init)
    assert script is not None
    assert "influx v1 dbrp create" in script.read_text()
    mosq = next(v for v in c["services"]["mosquitto"]["volumes"] if "mosquitto.conf" in v)
    assert _host_path(mosq) == (DEPLOY / "mosquitto.conf").resolve()


def test_dockerfile_copies_existing_files_and_runs_the_demo() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    for line in text.splitlines():
        if line.startswith("COPY "):
            *sources, _dest = line.split()[1:]
            for s in sources:
                assert (ROOT / s).exists(), line
    assert '"gmp-edge", "demo", "--config", "/etc/gmp-edge/plant.toml"' in text
    assert "USER gmp-edge" in text


@pytest.mark.parametrize(
    "line",
    [
        "Restart=always",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/gmp-edge",
        "NoNewPrivileges=yes",
        "User=gmp-edge",
        "StateDirectory=gmp-edge",
    ],
)
def test_systemd_unit_hardening(line: str) -> None:
    lines = (DEPLOY / "gmp-edge.service").read_text().splitlines()
    assert line in lines
