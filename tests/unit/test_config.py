"""Configuration: the shipped example loads; every kind of bad input is refused by name."""

import copy
from pathlib import Path

import pytest

from gmp_edge.edge.config import ConfigError, load_config, parse_config

from .conftest import (
    COMPRESSION,
    COUNTER,
    FORCE,
    PRESS,
    RH,
    TEMP,
    TRH,
    PlantBuilder,
    index_of,
    item,
    small_plant,
)

EXAMPLE = Path(__file__).parents[2] / "examples" / "plant.toml"


def test_example_is_valid():
    cfg, sha = load_config(EXAMPLE)
    assert len(sha) == 64
    assert cfg.store.path.is_absolute()
    assert cfg.simulation is not None and cfg.simulation.spec.name == "sim-solid-dose.toml"
    assert {d.protocol for d in cfg.devices} == {"modbus", "opcua"}


def base() -> PlantBuilder:
    """The small plant with a scaled 16-bit register (a signed 0.1 unit raw value)."""
    plant = small_plant()
    plant.tag(
        TRH,
        "temperature_raw",
        unit="degC",
        modbus={"function": "input", "address": 4, "data_type": "int16", "scale": 0.1},
    )
    return plant


BASE = base().data
RAW = f"{TEMP}_raw"
T = TEMP


def at(section: str, **match) -> str:
    """``section[i](id)`` of the item ``match`` selects, as a problem names it."""
    i = index_of(BASE[section], **match)
    return f"{section}[{i}]({next(iter(match.values()))})"


def tag(data, path):
    return item(data["tags"], path=path)


def device(data, device_id):
    return item(data["devices"], id=device_id)


def mutate(fn):
    data = copy.deepcopy(BASE)
    fn(data)
    return data


def swap_source(data, path, kind, source):
    t = tag(data, path)
    t.pop("modbus", None)
    t[kind] = source


def problems(data):
    with pytest.raises(ConfigError) as info:
        parse_config(data, Path("plant.toml"))
    return str(info.value)


CASES = [
    ("unknown top-level key", lambda d: d.update(sites={}), "sites: Extra inputs"),
    (
        "unknown device key (typo)",
        lambda d: device(d, TRH).update(polling_interval=1),
        f"{at('devices', id=TRH)}.polling_interval: Extra inputs",
    ),
    (
        "port out of range",
        lambda d: device(d, TRH).update(port=70000),
        f"{at('devices', id=TRH)}.port: Input should be less than or equal to 65535 (got 70000)",
    ),
    (
        "negative poll interval",
        lambda d: device(d, TRH).update(poll_interval_s=-1),
        "poll_interval_s: Input should be greater than 0 (got -1)",
    ),
    (
        "unknown protocol",
        lambda d: device(d, TRH).update(protocol="profibus"),
        at("devices", id=TRH),
    ),
    (
        "duplicate tag path",
        lambda d: d["tags"].append(copy.deepcopy(tag(d, T))),
        f"path: duplicate '{T}'",
    ),
    (
        "duplicate device id",
        lambda d: d["devices"].append(copy.deepcopy(device(d, TRH))),
        f"devices[{len(BASE['devices'])}]({TRH}).id: duplicate '{TRH}'",
    ),
    (
        "word order on a 16-bit value",
        lambda d: tag(d, RAW)["modbus"].update(word_order="little"),
        "word_order set on a 16-bit value (int16)",
    ),
    (
        "register overlap with conflicting types",
        lambda d: d["tags"].append(
            {  # holding registers 1..2: the second half of RH and the first of TEMP
                "path": f"{RH}_int",
                "device": TRH,
                "modbus": {"address": 1, "data_type": "int32"},
            }
        ),
        "overlap tags[",
    ),
    (
        "unknown device on a tag",
        lambda d: tag(d, T).update(device="pc-nowhere"),
        f"{at('tags', path=T)}.device: unknown device 'pc-nowhere'",
    ),
    (
        "path with an unknown room",
        lambda d: tag(d, T).update(path=T.replace(f"/{COMPRESSION}/", "/packaging/")),
        "unknown room 'packaging'",
    ),
    (
        "path with the wrong site",
        lambda d: tag(d, T).update(path="other/" + T.split("/", 1)[1]),
        "site segment 'other'",
    ),
    (
        "path that is not five segments",
        lambda d: tag(d, T).update(path="acme/temperature"),
        "is not site/area/room/equipment/signal",
    ),
    (
        "two sources on one tag",
        lambda d: tag(d, T).update(opcua={"node_id": "ns=2;s=X"}),
        "exactly one of modbus, record or opcua",
    ),
    (
        "opcua source on a modbus device",
        lambda d: swap_source(d, T, "opcua", {"node_id": "ns=2;s=X"}),
        f"device '{TRH}' is Modbus",
    ),
    (
        "record source on a device without record mode",
        lambda d: swap_source(d, T, "record", {"channel": 1}),
        "record_mode 'none'",
    ),
    (
        # found: left out, a REMOTE counter's 21.0 degC was stored Good as 2.36e-41
        "analog record tag on a counter without float_word_order",
        lambda d: (
            device(d, COUNTER).pop("float_word_order"),
            d["tags"].append(
                {"path": f"{COUNTER}/temperature", "device": COUNTER, "record": {"analog": 1}}
            ),
        ),
        "needs float_word_order: REMOTE and Solair counters store floats low word first",
    ),
    (
        # found: passed check-config, then every read of the node failed on the server
        "OPC UA node id without its namespace and type",
        lambda d: tag(d, FORCE)["opcua"].update(node_id="Press.MainCompressionForce"),
        "is not an OPC UA node id; expected ns=<index>;s=<name>",
    ),
    (
        "adjacent room unknown",
        lambda d: item(d["rooms"], id=COMPRESSION).update(adjacent=["warehouse"]),
        f"{at('rooms', id=COMPRESSION)}.adjacent[0]: unknown room 'warehouse'",
    ),
    (
        "grade not a GMP grade",
        lambda d: item(d["rooms"], id=COMPRESSION).update(grade="E"),
        f"{at('rooms', id=COMPRESSION)}.grade",
    ),
    (
        "valid range inverted",
        lambda d: tag(d, T).update(valid_min=50.0, valid_max=10.0),
        "valid_min 50.0 must be below valid_max 10.0",
    ),
    (
        "string without length",
        lambda d: swap_source(d, T, "modbus", {"address": 2, "data_type": "string"}),
        "a string needs length",
    ),
    (
        "scale zero",
        lambda d: tag(d, RAW)["modbus"].update(scale=0),
        "scale 0",
    ),
    (
        "opcua security half set",
        lambda d: device(d, PRESS).update(security_mode="Sign"),
        "must both be 'None' or both be set",
    ),
    (
        "reconnect min above max",
        lambda d: device(d, TRH).update(reconnect_min_s=60, reconnect_max_s=5),
        "reconnect_min_s: 60",
    ),
    (
        "commit interval above one second",
        lambda d: d.setdefault("store", {}).update(commit_interval_s=5),
        "store.commit_interval_s",
    ),
]


def test_the_base_plant_is_valid():
    assert {t.path for t in parse_config(copy.deepcopy(BASE), Path("plant.toml")).tags} >= {
        T,
        RH,
        RAW,
    }


@pytest.mark.parametrize(("name", "change", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_config_is_refused_with_key_path(name, change, expected):
    text = problems(mutate(change))
    assert "plant.toml" in text
    assert expected in text, text


def test_address_below_base(tmp_path):
    def change(d):
        device(d, TRH)["address_base"] = 1
        tag(d, RH)["modbus"]["address"] = 0

    expected = f"{at('tags', path=RH)}.modbus.address: 0 is below the device's address_base 1"
    assert expected in problems(mutate(change))


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
        tag(d, T)["device"] = "x1"
        tag(d, RH)["device"] = "x2"

    text = problems(mutate(change))
    assert "'x1'" in text and "'x2'" in text


def _wrong_port_and_unknown_device(d):
    device(d, TRH)["port"] = "abc"  # a field error...
    tag(d, T)["device"] = "x1"  # ...and a reference no field check can see


def _bad_item_before_a_duplicate(d):
    d["tags"].insert(0, {**copy.deepcopy(tag(d, RH)), "path": f"{T}-extra", "unit": 5})
    d["tags"].append(copy.deepcopy(tag(d, T)))  # the same path twice


def _wrong_limit_and_unknown_room(d):
    d["rooms"][0]["area"] = "nowhere"
    d["store"] = {"commit_interval_s": "soon"}


ALL_AT_ONCE = [
    # (change, every text the one report must hold); before the fix the checks across
    # sections were skipped whenever any field was wrong (issue 13 item 8)
    (_wrong_port_and_unknown_device, ["port", "'abc'", "unknown device 'x1'"]),
    (_bad_item_before_a_duplicate, ["tags[0]", "unit", "tags[9]", "duplicate", "first at tags[1]"]),
    (_wrong_limit_and_unknown_room, ["store.commit_interval_s", "unknown area 'nowhere'"]),
]


@pytest.mark.parametrize(("change", "wanted"), ALL_AT_ONCE)
def test_field_errors_do_not_hide_the_checks_across_sections(change, wanted):
    text = problems(mutate(change))
    for w in wanted:
        assert w in text, text
