"""A second service on the same store, a mistyped flag or a port in use: one line, nothing written.

Found on a plant: ``gmp-edge run --conf plant.toml`` typed while the demo ran was taken as
``--config``, the second service logged its start, wrote 27 "gmp-edge was not running" gaps
(it was) that became monitoring-loss blockers on two batches, then died on the port with a
traceback.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from gmp_edge.edge.cli import main
from gmp_edge.storage.lock import StoreLock

from .conftest import small_plant


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_a_second_instance_on_a_locked_store_exits_naming_store_and_pid_and_writes_nothing(
    tmp_path, capsys
):
    store = tmp_path / "data" / "plant.db"
    small_plant().section("store", path=str(store)).section("api", port=0).write(
        tmp_path / "plant.toml"
    )
    with StoreLock(store):  # the running instance
        before = _files(store.parent)
        assert main(["run", "--config", str(tmp_path / "plant.toml")]) == 1
        after = _files(store.parent)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert str(store) in err[0] and f"PID {os.getpid()}" in err[0]
    assert after == before  # no store, no audit entry, no gap, not a byte
    assert not store.exists()


def test_flag_abbreviations_are_refused(tmp_path, capsys):
    small_plant().section("store", path=str(tmp_path / "plant.db")).write(tmp_path / "plant.toml")
    with pytest.raises(SystemExit) as stop:
        main(["run", "--conf", str(tmp_path / "plant.toml")])
    assert stop.value.code == 2
    assert "--conf" in capsys.readouterr().err
    assert not (tmp_path / "plant.db").exists()


def test_a_port_in_use_is_one_line_and_no_record_is_written(tmp_path, capsys):
    store = tmp_path / "plant.db"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        small_plant().section("store", path=str(store)).section(
            "api", host="127.0.0.1", port=port
        ).write(tmp_path / "plant.toml")
        assert main(["run", "--config", str(tmp_path / "plant.toml")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"127.0.0.1:{port}" in err[0] and "in use" in err[0]
    assert not store.exists()  # checked before anything is opened: no start audited, no run
