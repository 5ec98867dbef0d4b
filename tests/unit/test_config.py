"""Configuration: the shipped example loads; every kind of bad input is refused by name."""

import copy
import tomllib
from pathlib import Path

import pytest

from edge.config import ConfigError, load_config, parse_config

EXAMPLE = Path(__file__).parents[2] / "examples" / "plant.toml"
BASE = tomllib.loads(EXAMPLE.read_text())


def test_example_is_valid():
    cfg, sha = load_config(EXAMPLE)
    assert len(sha) == 64
    assert cfg.store.path.is_absolute()
    assert cfg.simulation is not None and cfg.simulation.spec.name == "sim-solid-dose.toml"
    assert {d.protocol for d in cfg.devices} == {"modbus", "opcua"}


def tag_index(data, suffix):
    return next(i for i, t in enumerate(data["tags"]) if t["path"].endswith(suffix))


def mutate(fn):
    data = copy.deepcopy(BASE)
    fn(data)
    return data


def swap_source(data, suffix, kind, source):
    tag = data["tags"][tag_index(data, suffix)]
    tag.pop("modbus", None)
    tag[kind] = source


def problems(data):
    with pytest.raises(ConfigError) as info:
        parse_config(data, Path("plant.toml"))
    return str(info.value)


T = "granulation/trh-gran-01/temperature"


CASES = [
    ("unknown top-level key", lambda d: d.update(sites={}), "sites: Extra inputs"),
    (
        "unknown device key (typo)",
        lambda d: d["devices"][0].update(polling_interval=1),
        "devices[0](pc-gran-01).polling_interval: Extra inputs",
    ),
    (
        "port out of range",
        lambda d: d["devices"][1].update(port=70000),
        "devices[1](trh-gran-01).port: Input should be less than or equal to 65535 (got 70000)",
    ),
    (
        "negative poll interval",
        lambda d: d["devices"][1].update(poll_interval_s=-1),
        "poll_interval_s: Input should be greater than 0 (got -1)",
    ),
    (
        "unknown protocol",
        lambda d: d["devices"][1].update(protocol="profibus"),
        "devices[1](trh-gran-01)",
    ),
    (
        "duplicate tag path",
        lambda d: d["tags"].append(copy.deepcopy(d["tags"][tag_index(d, T)])),
        "path: duplicate 'acme-basel/solid-dose/granulation/trh-gran-01/temperature'",
    ),
    (
        "duplicate device id",
        lambda d: d["devices"].append(copy.deepcopy(d["devices"][1])),
        "devices[6](trh-gran-01).id: duplicate 'trh-gran-01'",
    ),
    (
        "word order on a 16-bit value",
        lambda d: d["tags"][tag_index(d, "dp1_raw")]["modbus"].update(word_order="little"),
        "word_order set on a 16-bit value (int16)",
    ),
    (
        "register overlap with conflicting types",
        lambda d: d["tags"].append(
            {
                "path": "acme-basel/solid-dose/granulation/trh-gran-01/rh_int",
                "device": "trh-gran-01",
                "modbus": {"address": 1, "data_type": "int32"},
            }
        ),
        "overlap tags[",
    ),
    (
        "unknown device on a tag",
        lambda d: d["tags"][0].update(device="pc-nowhere"),
        "tags[0](acme-basel/solid-dose/granulation/pc-gran-01/particles_0_5).device: "
        "unknown device 'pc-nowhere'",
    ),
    (
        "path with an unknown room",
        lambda d: d["tags"][tag_index(d, T)].update(
            path="acme-basel/solid-dose/packaging/trh-gran-01/temperature"
        ),
        "unknown room 'packaging'",
    ),
    (
        "path with the wrong site",
        lambda d: d["tags"][tag_index(d, T)].update(
            path="other/solid-dose/granulation/trh-gran-01/temperature"
        ),
        "site segment 'other'",
    ),
    (
        "path that is not five segments",
        lambda d: d["tags"][tag_index(d, T)].update(path="acme-basel/temperature"),
        "is not site/area/room/equipment/signal",
    ),
    (
        "two sources on one tag",
        lambda d: d["tags"][tag_index(d, T)].update(opcua={"node_id": "ns=2;s=X"}),
        "exactly one of modbus, record or opcua",
    ),
    (
        "opcua source on a modbus device",
        lambda d: swap_source(d, T, "opcua", {"node_id": "ns=2;s=X"}),
        "device 'trh-gran-01' is Modbus",
    ),
    (
        "record source on a device without record mode",
        lambda d: swap_source(d, T, "record", {"channel": 1}),
        "record_mode 'none'",
    ),
    (
        "adjacent room unknown",
        lambda d: d["rooms"][0].update(adjacent=["warehouse"]),
        "rooms[0](granulation).adjacent[0]: unknown room 'warehouse'",
    ),
    (
        "grade not a GMP grade",
        lambda d: d["rooms"][0].update(grade="E"),
        "rooms[0](granulation).grade",
    ),
    (
        "valid range inverted",
        lambda d: d["tags"][tag_index(d, T)].update(valid_min=50.0, valid_max=10.0),
        "valid_min 50.0 must be below valid_max 10.0",
    ),
    (
        "string without length",
        lambda d: swap_source(d, T, "modbus", {"address": 2, "data_type": "string"}),
        "a string needs length",
    ),
    (
        "scale zero",
        lambda d: d["tags"][tag_index(d, "dp1_raw")]["modbus"].update(scale=0),
        "scale 0",
    ),
    (
        "opcua security half set",
        lambda d: d["devices"][5].update(security_mode="Sign"),
        "must both be 'None' or both be set",
    ),
    (
        "reconnect min above max",
        lambda d: d["devices"][1].update(reconnect_min_s=60, reconnect_max_s=5),
        "reconnect_min_s: 60",
    ),
    (
        "commit interval above one second",
        lambda d: d["store"].update(commit_interval_s=5),
        "store.commit_interval_s",
    ),
]


@pytest.mark.parametrize(("name", "change", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_config_is_refused_with_key_path(name, change, expected):
    text = problems(mutate(change))
    assert "plant.toml" in text
    assert expected in text, text


def test_address_below_base(tmp_path):
    def change(d):
        d["devices"][1]["address_base"] = 1
        d["tags"][tag_index(d, "trh-gran-01/rh")]["modbus"]["address"] = 0

    assert "below the device's address_base 1" in problems(mutate(change))


def test_not_toml(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[site\nid=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(p)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "none.toml")


def test_every_problem_is_reported_at_once():
    def change(d):
        d["tags"][0]["device"] = "x1"
        d["tags"][1]["device"] = "x2"

    text = problems(mutate(change))
    assert "'x1'" in text and "'x2'" in text
