"""One service process per store: an exclusive lock taken before anything is written.

Two services on one store write false records: each one's heartbeat looks like the other's
downtime, so each records "gmp-edge was not running" gaps while it was. The lock is an
``flock`` on ``<store>.lock`` beside the database. The kernel drops it when the holder dies,
however it dies, so a crashed service never leaves a stale lock behind; the PID written in
the file is only there to tell the second starter whom to look for.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from gmp_edge.errors import GmpEdgeError


class StoreInUse(GmpEdgeError, RuntimeError):
    """Another process holds the store's lock; ``holder`` is its PID as it wrote it."""

    def __init__(self, store: Path, holder: str) -> None:
        self.store = store
        self.holder = holder
        who = f"PID {holder}" if holder else "a process that did not write its PID"
        super().__init__(
            f"store {store} is in use by another gmp-edge ({who}); "
            "stop it first, or give this one a store of its own ([store] path)"
        )


class LockUnavailable(GmpEdgeError, OSError):
    """The lock file cannot be made or opened (its folder is a file, no permission, ...)."""


def lock_path(store: Path) -> Path:
    """Where the lock of the store at ``store`` lives."""
    return store.with_name(store.name + ".lock")


class StoreLock:
    """The exclusive lock of one store, held from :meth:`acquire` until :meth:`release`."""

    def __init__(self, store: Path) -> None:
        self.store = Path(store)
        self.path = lock_path(self.store)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise :class:`StoreInUse` naming the holder; never waits."""
        if self._fd is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise LockUnavailable(
                f"cannot open the store {self.store}: its lock {self.path}: {exc.strerror}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise StoreInUse(self.store, holder) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (the file stays: removing it would race the next starter)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
