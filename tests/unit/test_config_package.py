"""The configuration package: a leaf, one secret helper, one default per key."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from gmp_edge.collector.modbus import ModbusDeviceSpec
from gmp_edge.collector.opcua.spec import OpcuaDeviceSpec
from gmp_edge.config import (
    MissingSecret,
    ModbusDevice,
    NotifyConfig,
    OpcuaDevice,
    Order,
    WebhookConfig,
    secret_from_env,
)
from gmp_edge.edge.cli import main
from gmp_edge.edge.config import ConfigError
from gmp_edge.edge.forwarding import influx_sink
from gmp_edge.edge.service import EdgeService
from gmp_edge.edge.wiring import modbus_spec, opcua_spec
from gmp_edge.historian.store import Store
from gmp_edge.notify import build_notifiers

from .conftest import TEMP, small_plant

NOT_SET = "GMP_EDGE_TEST_SECRET_NOT_SET"


def test_config_imports_nothing_else_of_ours():
    """Of ours, the schema loads only the exception root (a leaf itself)."""
    code = (
        "import sys, gmp_edge.config; "
        "print(sorted(m for m in sys.modules if m.startswith('gmp_edge.')"
        " and not m.startswith('gmp_edge.config') and m != 'gmp_edge.errors'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- secrets


def test_secret_from_env():
    assert secret_from_env("PW", {"PW": "s3cret"}) == "s3cret"
    for env in ({}, {"PW": ""}):
        with pytest.raises(MissingSecret, match="environment variable PW is not set") as exc:
            secret_from_env("PW", env, "mqtt.password_env")
        assert exc.value.name == "PW" and str(exc.value).startswith("mqtt.password_env: ")


def test_opcua_password_env_unset_is_refused_not_dropped(monkeypatch):
    monkeypatch.delenv(NOT_SET, raising=False)
    d = OpcuaDevice(id="press", protocol="opcua", endpoint="opc.tcp://h:4840", password_env=NOT_SET)
    with pytest.raises(MissingSecret, match=NOT_SET):
        opcua_spec(d)
    monkeypatch.setenv(NOT_SET, "pw")
    assert opcua_spec(d).password == "pw"
    # no variable named: no password, nothing looked up
    assert opcua_spec(d.model_copy(update={"password_env": None})).password is None


def test_influx_secret_names_key_and_file(tmp_path):
    plant = small_plant().section(
        "influxdb", version=2, url="http://127.0.0.1:9", org="o", bucket="b", token_env=NOT_SET
    )
    with pytest.raises(ConfigError, match=f"influxdb.token_env: environment variable {NOT_SET}"):
        influx_sink(plant.build(), "plant.toml", {})


def test_webhook_secret_missing_names_the_webhook():
    cfg = NotifyConfig(webhooks=[WebhookConfig(url="https://h.example/x", secret_env=NOT_SET)])
    with pytest.raises(MissingSecret, match=rf"notify.webhooks\[0\].secret_env: .*{NOT_SET}"):
        build_notifiers(cfg, environ={})


def test_reconcile_refuses_an_unset_password_before_connecting(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(NOT_SET, raising=False)
    plant = small_plant().section(
        "influxdb", url="http://127.0.0.1:9", username="edge", password_env=NOT_SET
    )
    cfg, sha = plant.load(tmp_path)
    store = Store(cfg.store.path)
    EdgeService(cfg, sha, store)  # registers the tags, as a run does
    store.close()
    args = ["reconcile", "--config", str(tmp_path / "plant.toml")]
    assert main([*args, "--start", "2026-01-01T00:00:00Z", "--end", "2026-01-01T01:00:00Z"]) == 2
    assert f"influxdb.password_env: environment variable {NOT_SET}" in capsys.readouterr().err


# ----------------------------------------------------------------------------- defaults


def test_float_word_order_has_no_default_anywhere():
    """The models differ, so nothing guesses: check-config requires the order where analog
    record tags need it (test_config), and a device without them never decodes a float."""
    with pytest.raises(TypeError, match="float_word_order"):
        ModbusDeviceSpec("d", "h", 502, 1)  # type: ignore[call-arg]
    d = ModbusDevice(id="pc", protocol="modbus", host="h", record_mode="lighthouse")
    assert d.float_word_order is None
    given = ModbusDevice(
        id="pc",
        protocol="modbus",
        host="h",
        record_mode="lighthouse",
        float_word_order=Order.LITTLE,
    )
    assert modbus_spec(given).float_word_order is Order.LITTLE


def test_limit_on_a_tag_in_an_unknown_room_is_reported_not_a_crash():
    plant = small_plant()
    bad = TEMP.replace("/compression/", "/nowhere/")
    next(t for t in plant.data["tags"] if t["path"] == TEMP)["path"] = bad
    next(e for e in plant.data["limits"] if e["tag"] == TEMP)["tag"] = bad
    with pytest.raises(ConfigError) as exc:  # was StopIteration from the limit model
        plant.build()
    assert any("unknown room 'nowhere'" in p for p in exc.value.problems), exc.value.problems


# the driver spec's name of a config key where the two differ
_SPEC_NAMES = {"max_registers_per_request": "max_registers", "max_register_gap": "max_gap"}


@pytest.mark.parametrize(
    ("model", "spec"), [(ModbusDevice, ModbusDeviceSpec), (OpcuaDevice, OpcuaDeviceSpec)]
)
def test_driver_specs_never_disagree_with_a_config_default(model, spec):
    # the wiring always passes the configured value; a driver default that differs from
    # the config's would only ever bite a caller that forgets one (float_word_order did)
    spec_defaults = {
        f.name: f.default for f in dataclasses.fields(spec) if f.default is not dataclasses.MISSING
    }
    compared = 0
    for key, field in model.model_fields.items():
        name = _SPEC_NAMES.get(key, key)
        if name in spec_defaults and not field.is_required():
            assert spec_defaults[name] == field.get_default(), f"{spec.__name__}.{name}"
            compared += 1
    assert compared >= 5
