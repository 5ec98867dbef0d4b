"""The service's periodic jobs run on :class:`gmp_edge.periodic.Periodic`: in virtual time."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import cast

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.edge.lifecycle import anchor_periodically
from tests.virtual_time import START, virtual_time


class FlakyTrail:
    """The one thing the anchor job asks of the trail (twice a tick); the third read fails."""

    def __init__(self) -> None:
        self.calls = 0

    def head(self) -> tuple[int, str]:
        self.calls += 1
        if self.calls == 3:  # the second tick's first read
            raise RuntimeError("database is locked")
        return self.calls, "ab" * 32


@virtual_time
async def test_an_anchor_tick_that_fails_does_not_end_the_anchors(tmp_path: Path) -> None:
    anchors = tmp_path / "edge.anchors"
    trail = FlakyTrail()
    stop = asyncio.Event()
    job = asyncio.create_task(anchor_periodically(cast(AuditTrail, trail), stop, 60, anchors))
    loop = asyncio.get_running_loop()
    await asyncio.sleep(60 * 3 + 30)  # ticks at +60 (ok), +120 (head fails), +180 (ok)
    assert loop.time() == START + 210
    stop.set()
    await job  # stop ends the wait: one last anchor on the way out
    lines = anchors.read_text().splitlines()
    assert [line.split()[1] for line in lines] == ["seq=1", "seq=4", "seq=6"]
