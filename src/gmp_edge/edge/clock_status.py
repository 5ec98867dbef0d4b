"""Clock status at start and wall-clock jumps while running (for the audit trail).

Timestamps are only as trustworthy as the clock: ALCOA+ "contemporaneous" needs the
reviewer to know whether the box was time-synchronised and when its clock was stepped.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def clock_status() -> dict[str, object]:
    """What the OS says about time synchronisation (never raises, never waits long)."""
    status: dict[str, object] = {"source": "unknown", "synchronized": None}
    if shutil.which("timedatectl"):
        try:
            out = subprocess.run(
                ["timedatectl", "show", "-p", "NTPSynchronized", "-p", "NTP", "--value"],
                capture_output=True,
                text=True,
                timeout=2,
                check=False,
            ).stdout.split()
            if len(out) == 2:
                return {
                    "source": "timedatectl",
                    "ntp_enabled": out[0] == "yes",
                    "synchronized": out[1] == "yes",
                }
        except (OSError, subprocess.SubprocessError):
            pass
    if Path("/run/systemd/timesync/synchronized").exists():
        return {"source": "systemd-timesyncd", "synchronized": True}
    return status


class ClockSync:
    """Whether the clock is synchronised, asked of the OS at most every ``every_s`` (the
    health route is polled; ``timedatectl`` is a process)."""

    def __init__(self, every_s: float = 30.0, ask: Callable[[], dict[str, object]] | None = None):
        self.every_s = every_s
        self._ask = ask or clock_status
        self._at: float | None = None
        self._value: bool | None = None

    def synchronised(self) -> bool | None:
        """True or False as the OS says; None when it cannot say."""
        now = time.monotonic()
        if self._at is None or now - self._at >= self.every_s:
            value = self._ask().get("synchronized")
            self._value = value if isinstance(value, bool) else None
            self._at = now
        return self._value


@dataclass(frozen=True, slots=True)
class ClockJump:
    """The wall clock moved by ``delta_s`` more (or less) than the monotonic clock."""

    at_wall_s: float
    delta_s: float


class ClockWatch:
    """Compares wall-clock and monotonic progress between samples (pure given its inputs)."""

    def __init__(
        self, threshold_s: float = 1.0, wall: float | None = None, mono: float | None = None
    ):
        self.threshold_s = threshold_s
        self._wall = time.time() if wall is None else wall
        self._mono = time.monotonic() if mono is None else mono

    def sample(self, wall: float | None = None, mono: float | None = None) -> ClockJump | None:
        """Take a sample; a jump larger than the threshold is returned once."""
        wall = time.time() if wall is None else wall
        mono = time.monotonic() if mono is None else mono
        delta = (wall - self._wall) - (mono - self._mono)
        self._wall, self._mono = wall, mono
        if abs(delta) >= self.threshold_s:
            return ClockJump(wall, delta)
        return None
