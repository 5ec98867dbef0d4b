"""Turn a writer that pushes bytes through a callback into an iterator an HTTP response pulls.

Exports such as ``readings.csv`` are written by code that calls ``write(chunk)``; a
streaming response wants an iterator. The writer runs in a thread and hands chunks over a
small queue, so memory stays bounded; if the client goes away the iterator is closed, the
next ``write`` raises :class:`Cancelled` and the writer's own cleanup runs (a read
transaction left open would hold back the store's WAL checkpoints).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator

from gmp_edge.errors import GmpEdgeError

_DONE = object()


class Cancelled(GmpEdgeError):
    """The reader stopped pulling: the writer should stop."""


def stream_writes(
    produce: Callable[[Callable[[bytes], None]], object], depth: int = 8
) -> Generator[bytes, None, None]:
    """Chunks passed to ``write`` by ``produce(write)``, in order, as they come.

    An exception in ``produce`` is raised from the iterator after the chunks before it.
    """
    q: queue.Queue[object] = queue.Queue(depth)
    stop = threading.Event()

    def write(chunk: bytes) -> None:
        while True:
            if stop.is_set():
                raise Cancelled
            try:
                q.put(chunk, timeout=0.1)
                return
            except queue.Full:
                continue

    def run() -> None:
        result: object = _DONE
        try:
            produce(write)
        except Cancelled:
            return
        except BaseException as exc:  # handed to the reader, raised there
            result = exc
        while not stop.is_set():
            try:
                q.put(result, timeout=0.1)
                return
            except queue.Full:
                continue

    thread = threading.Thread(target=run, name="export-stream", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, bytes)
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)
