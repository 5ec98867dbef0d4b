"""The live status page in a real headless Chromium, as a person would see it."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest

from .conftest import require_tool

pytestmark = pytest.mark.system

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=6000",
]


async def chromium(*args: str, profile: Path) -> str:
    exe = require_tool("chromium")
    proc = await asyncio.create_subprocess_exec(
        exe,
        *FLAGS,
        f"--user-data-dir={profile}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    return out.decode()


async def test_page_shows_rooms_values_and_devices(api, tmp_path):
    client, _ = api
    url = str(client.base_url) + "/"
    dom = await chromium("--dump-dom", url, profile=tmp_path / "p1")
    # the rooms, with their grade
    for room in ("Granulation", "Compression", "Clean corridor"):
        assert room in dom
    assert "Grade D" in dom
    assert "<td>no tags configured</td>" in dom  # the corridor has no instruments of its own
    # live values with units and quality, rendered by the page's script
    assert re.search(r'data-tag="acme-basel/solid-dose/granulation/trh-gran-01/temperature"', dom)
    assert re.search(r"\d+\.\d\d degC", dom)
    assert re.search(r"\d{1,3}(,\d{3})+ particles/m3", dom), "particle concentration missing"
    assert 'class="q-good">good' in dom
    # every device connected, overall status ok
    devices = re.findall(r'<tr class="device" data-device="([\w-]+)">', dom)
    assert sorted(devices) == sorted(
        ["pc-gran-01", "trh-gran-01", "dp-gran-01", "pc-comp-01", "trh-comp-01", "press-01"]
    )
    assert dom.count('class="q-good">connected') == 6
    assert 'id="overall" class="ok">ok' in dom
    shot = Path(os.environ.get("GMP_EDGE_SCREENSHOT", tmp_path / "status.png"))
    await chromium(f"--screenshot={shot}", "--window-size=1280,900", url, profile=tmp_path / "p2")
    assert shot.stat().st_size > 10_000
