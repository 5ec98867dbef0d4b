"""Alarm probe for the scale benchmark: makes one limit trip and clear, over real Modbus.

The scale plant polls a simulated particle counter's ``location`` holding register (25,
writable, 1..200) on its first device, with an alert limit of 100 on it. A thread writes
150 and 1 to that register in turn (function 06, one write every ``every_s``), so the
running service raises an alert and clears it again every two writes. The service
measures each activation itself, from the commit that brought the reading to the alarm
and its audit entry committed (``monitoring.alarm_latency_ms_p50``/``_p99`` of
/api/health); the probe only counts its writes.
"""

from __future__ import annotations

import socket
import struct
import threading

LOCATION_REGISTER = 25
TRIP, CLEAR = 150, 1  # the limit is 100; the simulator accepts 1..200
LIMIT = 100.0


def write_register(sock: socket.socket, tid: int, unit: int, address: int, value: int) -> None:
    """One Modbus TCP function 06 write; raises OSError on an exception or a short answer."""
    pdu = struct.pack(">BHH", 6, address, value)
    sock.sendall(struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu)
    answer = b""
    while len(answer) < 12:
        chunk = sock.recv(12 - len(answer))
        if not chunk:
            raise OSError("the simulator closed the connection")
        answer += chunk
    if answer[7] != 6:
        raise OSError(f"write refused: function {answer[7]:#x}, code {answer[8]}")


class Toggler:
    """The writing thread: ``start()``, then ``stop()`` returns how many writes were made."""

    def __init__(self, host: str, port: int, unit: int, every_s: float) -> None:
        self.host, self.port, self.unit, self.every_s = host, port, unit, every_s
        self.writes = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alarm-probe", daemon=True)

    def start(self) -> None:
        """Begin writing."""
        self._thread.start()

    def stop(self) -> int:
        """Stop writing (the register is left at the clearing value); the writes made."""
        self._stop.set()
        self._thread.join(timeout=10)
        return self.writes

    def _run(self) -> None:
        try:
            with socket.create_connection((self.host, self.port), timeout=5) as sock:
                tid = 0
                while not self._stop.is_set():
                    tid = (tid + 1) % 65536
                    value = TRIP if self.writes % 2 == 0 else CLEAR
                    write_register(sock, tid, self.unit, LOCATION_REGISTER, value)
                    self.writes += 1
                    self._stop.wait(self.every_s)  # the probe's own pace, not a test's wait
                write_register(sock, (tid + 1) % 65536, self.unit, LOCATION_REGISTER, CLEAR)
        except OSError as exc:
            self.error = f"{type(exc).__name__}: {exc}"
