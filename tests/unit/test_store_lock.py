"""One service process per store: the store lock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gmp_edge.storage.lock import LockUnavailable, StoreInUse, StoreLock, lock_path

HOLD = """
import sys
from pathlib import Path
from gmp_edge.storage.lock import StoreLock
lock = StoreLock(Path(sys.argv[1]))
lock.acquire()
print("held", flush=True)
sys.stdin.readline()
"""


def test_second_lock_on_the_same_store_is_refused_naming_store_and_pid(tmp_path: Path) -> None:
    store = tmp_path / "plant.db"
    with StoreLock(store), pytest.raises(StoreInUse) as err:
        StoreLock(store).acquire()
    assert str(store) in str(err.value)
    assert f"PID {os.getpid()}" in str(err.value)
    assert err.value.holder == str(os.getpid())


def test_lock_is_free_again_after_release(tmp_path: Path) -> None:
    store = tmp_path / "sub" / "plant.db"
    first = StoreLock(store)
    first.acquire()
    assert first.held
    first.release()
    assert not first.held
    with StoreLock(store) as second:
        assert second.held
    assert lock_path(store).exists()  # kept: removing it would race the next starter


def test_lock_held_by_another_process_names_that_pid_and_dies_with_it(tmp_path: Path) -> None:
    store = tmp_path / "plant.db"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(store)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            with pytest.raises(StoreInUse, match=f"PID {holder.pid}"):
                StoreLock(store).acquire()
        finally:
            holder.kill()  # no clean release: the kernel must drop the lock anyway
            holder.wait()
    with StoreLock(store) as lock:
        assert lock.held


def test_other_stores_are_independent(tmp_path: Path) -> None:
    with StoreLock(tmp_path / "a.db"), StoreLock(tmp_path / "b.db") as b:
        assert b.held


def test_a_lock_that_cannot_be_made_says_which_store(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where the store's folder should be")
    with pytest.raises(LockUnavailable, match=r"cannot open the store .*blocker"):
        StoreLock(tmp_path / "blocker" / "plant.db").acquire()
