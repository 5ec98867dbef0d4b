"""The service's periodic jobs run on :class:`gmp_edge.periodic.Periodic`: in virtual time."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.edge import lifecycle
from gmp_edge.integrity.anchors import anchors_path_for, read_anchors
from tests.virtual_time import START, virtual_time


@virtual_time
async def test_an_anchor_tick_that_fails_does_not_end_the_anchors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "edge.db"
    trail = AuditTrail(store)
    calls = 0
    real = lifecycle.anchor_now

    def flaky(path: Path, kind: str) -> object:
        nonlocal calls
        calls += 1
        trail.append("op.otto", "note", "test", str(calls))
        if calls == 2:  # the second tick: the disk refuses
            raise OSError(28, "No space left on device")
        return real(path, kind)

    monkeypatch.setattr(lifecycle, "anchor_now", flaky)
    stop = asyncio.Event()
    job = asyncio.create_task(lifecycle.anchor_periodically(store, stop, 60))
    loop = asyncio.get_running_loop()
    await asyncio.sleep(60 * 3 + 30)  # ticks at +60 (ok), +120 (fails), +180 (ok)
    assert loop.time() == START + 210
    stop.set()
    await job
    trail.close()
    anchors, problems = read_anchors(anchors_path_for(store))
    assert problems == []
    assert [(a.kind, a.audit_seq) for a in anchors] == [("periodic", 1), ("periodic", 3)]
