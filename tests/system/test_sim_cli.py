"""The command-line entry points, with Debian's mbpoll (libmodbus) as an independent client.

mbpoll must be installed (scripts/system-deps.sh); these tests fail, never skip, without it.
"""

from __future__ import annotations

import json
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.waiting import until_sync

pytestmark = pytest.mark.system

SPEC = """
seed = 1
tick_s = 0.2
[[modbus]]
id = "gw-a"
port = 0
  [[modbus.units]]
  unit_id = 1
  id = "pc-a"
  model = "particle_counter"
  sample_time_s = 1
  [[modbus.units]]
  unit_id = 2
  id = "trh-a"
  model = "trh_transmitter"
  temperature_c = 21.0
  rh_pct = 40.0
  [[modbus.units]]
  unit_id = 3
  id = "dp-a"
  model = "dp_transmitter"
  dp1_pa = 15.0
  dp2_pa = -8.0
[[opcua]]
id = "press-a"
port = 0
"""


def start(module: str, spec: Path, log: Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """Start a simulator entry point and return it with its parsed ready line."""
    with log.open("w") as err:  # the child has its own copy of the file
        proc = subprocess.Popen(
            [sys.executable, "-m", module, "--spec", str(spec)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    if not ready:
        stop(proc, signal.SIGKILL)
        pytest.fail(f"{module} printed no ready line in 30 s; stderr:\n{log.read_text()}")
    line = proc.stdout.readline()
    if not line:
        stop(proc, signal.SIGKILL)
        pytest.fail(f"{module} exited ({proc.returncode}); stderr:\n{log.read_text()}")
    return proc, json.loads(line)


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> int:
    """Signal the simulator and return its exit code (its stdout pipe closed)."""
    try:
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    finally:
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture(scope="module")
def started() -> float:
    """Wall time just before the module's simulator starts: it stamps nothing earlier."""
    return time.time()


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory, started: float) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("sim")
    spec = tmp / "spec.toml"
    spec.write_text(SPEC)
    proc, info = start("gmp_edge.simulators", spec, tmp / "stderr.log")
    yield info
    assert stop(proc) == 0, (tmp / "stderr.log").read_text()


def mbpoll(port: int, *args: str, write: tuple[str, ...] = ()) -> tuple[int, str, dict[int, float]]:
    """Run mbpoll once (writing ``write`` values if given); return rc, output, {ref: value}."""
    exe = shutil.which("mbpoll")
    assert exe, "mbpoll is not installed: run scripts/system-deps.sh (apt-get install mbpoll)"
    # mbpoll syntax: options, then the host, then the values to write.
    cmd = [exe, "-m", "tcp", "-p", str(port), "-1", "-o", "2", *args, "127.0.0.1", *write]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    out = done.stdout + done.stderr
    values = {
        int(m.group(1)): float(m.group(2))
        for m in re.finditer(r"^\[(\d+)\]:\s+(-?[\d.eE+-]+|nan)", out, re.MULTILINE)
    }
    return done.returncode, out, values


def test_ready_line(simulator: dict[str, Any]) -> None:
    assert simulator["ready"] is True
    assert set(simulator["modbus"]) == {"gw-a"}
    assert simulator["opcua"]["press-a"].startswith("opc.tcp://127.0.0.1:")
    assert simulator["opcua"]["press-a"].endswith("/gmp-edge/press")


def test_particle_counter_identity_one_based(simulator: dict[str, Any]) -> None:
    port = simulator["modbus"]["gw-a"]
    rc, out, v = mbpoll(port, "-a", "1", "-r", "1", "-c", "10", "-t", "4")
    assert rc == 0, out
    assert v[1] == 150  # 40001: map version
    assert v[4] == 210  # 40004: firmware
    assert v[7] == ord("R") << 8 | ord("E")  # 40007: product name starts "RE"


def test_trh_float_low_word_first(simulator: dict[str, Any]) -> None:
    port = simulator["modbus"]["gw-a"]
    # mbpoll's default 32-bit order is low word first: the Vaisala CDAB layout.
    rc, out, v = mbpoll(port, "-a", "2", "-0", "-r", "0", "-c", "2", "-t", "4:float")
    assert rc == 0, out
    assert 30 < v[0] < 50  # RH %
    assert 20 < v[2] < 22  # degC


def test_dp_signed_and_big_endian_float(simulator: dict[str, Any]) -> None:
    port = simulator["modbus"]["gw-a"]
    rc, out, _ = mbpoll(port, "-a", "3", "-0", "-r", "6", "-c", "1", "-t", "4")
    assert rc == 0, out
    signed = int(re.search(r"^\[6\]:\s+\d+ \((-\d+)\)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    assert -100 < signed < -60  # DP2 = -8.0 Pa as int16 x0.1
    rc, out, v = mbpoll(port, "-a", "3", "-0", "-r", "100", "-c", "1", "-t", "4:float", "-B")
    assert rc == 0, out
    assert 13 < v[100] < 17


def test_particle_record_via_index_write(simulator: dict[str, Any], started: float) -> None:
    port = simulator["modbus"]["gw-a"]

    def records_stored() -> float:
        rc, out, v = mbpoll(port, "-a", "1", "-0", "-r", "23", "-c", "1", "-t", "4")
        assert rc == 0, out
        return v[23]

    until_sync(lambda: records_stored() >= 1, what="a particle record (1 s samples)")
    records = ("-a", "1", "-0", "-r", "0", "-c", "8", "-t", "3:int", "-B")  # s32/u32, high first
    rc, out, _ = mbpoll(port, "-a", "1", "-0", "-r", "24", "-t", "4", write=("0",))
    assert rc == 0, out
    rc, out, v = mbpoll(port, "-a", "1", "-0", "-r", "24", "-c", "1", "-t", "4")
    assert v[24] == 0, out  # the index reads back what was written
    rc, out, first = mbpoll(port, *records)
    assert rc == 0, out
    rc, out, _ = mbpoll(port, "-a", "1", "-0", "-r", "24", "-t", "4", write=("65535",))
    assert rc == 0, out
    rc, out, last = mbpoll(port, *records)
    read_at = time.time()
    assert rc == 0, out
    # record timestamp (s32 high word first): a sample's end, in whole seconds (rounded)
    assert started <= last[0] <= read_at + 0.5
    assert last[0] >= first[0] > 0
    assert last[2] == 1  # sample time
    assert last[4] == 1  # location
    # cumulative channels: >= 0.5 um counted something (~24 expected a second) and each
    # larger size is a part of the one before
    assert last[8] > 0 and last[8] >= last[10] >= last[12] >= last[14]


def test_unmapped_register_is_an_exception(simulator: dict[str, Any]) -> None:
    port = simulator["modbus"]["gw-a"]
    rc, out, _ = mbpoll(port, "-a", "3", "-0", "-r", "7", "-c", "1", "-t", "4")
    assert rc != 0
    assert "Illegal data address" in out


def test_modbus_server_alone_and_sigint(tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    proc, info = start("gmp_edge.simulators.modbus_server", spec, tmp_path / "stderr.log")
    try:
        assert info == {"ready": True, "modbus": {"gw-a": info["modbus"]["gw-a"]}, "opcua": {}}
        rc, out, v = mbpoll(info["modbus"]["gw-a"], "-a", "3", "-r", "1", "-c", "1", "-t", "4")
        assert rc == 0 and v[1] == 9711, out
    finally:
        assert stop(proc, signal.SIGINT) == 0
    log = (tmp_path / "stderr.log").read_text()
    assert "Modbus TCP stopped" in log and "Traceback" not in log


def test_opcua_press_alone(tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    proc, info = start("gmp_edge.simulators.opcua_press", spec, tmp_path / "stderr.log")
    try:
        assert info["modbus"] == {}
        assert set(info["opcua"]) == {"press-a"}
    finally:
        assert stop(proc) == 0
    assert "Traceback" not in (tmp_path / "stderr.log").read_text()


def test_bad_spec_exits_2_naming_the_key(tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.replace("sample_time_s = 1", "sample_time_s = 0"))
    done = subprocess.run(
        [sys.executable, "-m", "gmp_edge.simulators", "--spec", str(spec)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert "modbus[0].units[0].sample_time_s: must be >= 1" in done.stderr
