"""What a service claims before it writes anything: its store's lock and its API's socket.

A second service on a store already in use, or an API port already taken, must be refused
before a single record is written: the lock first (nothing else may touch the store), then
the socket (bound here and handed to the web server, so the port cannot be lost between
the check and the use). Either refusal is one line naming what is in use.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Iterator

from gmp_edge.config import PlantConfig
from gmp_edge.errors import GmpEdgeError
from gmp_edge.storage.lock import StoreLock

BACKLOG = 2048  # as uvicorn's own default


class PortInUse(GmpEdgeError, OSError):
    """The API cannot listen where the configuration says; the message names host and port."""


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: a free port), or :class:`PortInUse`."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise PortInUse(f"API host {host!r} cannot be resolved: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(
                f"API address {host}:{port} is in use by another process; stop it or set "
                "another [api] port"
            ) from None
        raise PortInUse(f"API cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


@contextlib.contextmanager
def claimed(cfg: PlantConfig) -> Iterator[socket.socket]:
    """Hold the store's lock and the API's listening socket for the ``with`` block."""
    with StoreLock(cfg.store.path), listen(cfg.api.host, cfg.api.port) as sock:
        yield sock
