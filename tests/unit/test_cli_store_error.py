"""A store that cannot be opened is one line and exit code 1, never a traceback."""

from __future__ import annotations

import pytest

from gmp_edge.edge.cli import main
from gmp_edge.historian.store import Store, StoreError

from .conftest import small_plant


def test_run_with_a_store_that_cannot_be_opened_says_so_in_one_line(tmp_path, capsys):
    (tmp_path / "blocker").write_text("a file where the store's folder should be")
    small_plant().section("store", path="blocker/s.db").write(tmp_path / "plant.toml")
    assert main(["run", "--config", str(tmp_path / "plant.toml")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("store error: ") and "blocker" in err[0]
    assert "cannot open the store" in err[0]


def test_a_store_path_that_is_a_folder_is_a_store_error(tmp_path):
    (tmp_path / "s.db").mkdir()
    with pytest.raises(StoreError, match="cannot open the store"):
        Store(tmp_path / "s.db")
