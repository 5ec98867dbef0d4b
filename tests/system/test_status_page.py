"""The live status page in a real headless Chromium (driven by Playwright), as a person
would use it: sign in, read the rooms, sign out."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest
from playwright.async_api import async_playwright, expect

from .conftest import PEOPLE_PASSWORD, require_tool
from .test_monitoring_scenarios import hold_excursion

pytestmark = pytest.mark.system

DEVICES = ["pc-gran-01", "trh-gran-01", "dp-gran-01", "pc-comp-01", "trh-comp-01", "press-01"]


async def test_sign_in_then_rooms_values_alarms_and_devices(api, plant, tmp_path):
    client, _, _ = api
    url = str(client.base_url) + "/"
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=require_tool("chromium"), args=["--no-sandbox", "--disable-gpu"]
        )
        # the page's CSP forbids eval, so the test waits with locators, never with eval'd JS
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        await page.goto(url)
        # nothing is shown before signing in
        await page.wait_for_selector("#signin-form", state="visible")
        assert await page.locator("#live").is_hidden()
        # a wrong password is refused with a message, and the form stays
        await page.fill("#user_id", "viewer")
        await page.fill("#password", "Wrong-Pass-2026!")
        await page.click("#signin-button")
        await expect(page.locator("#signin-error")).to_contain_text("wrong user id or password")
        # the right one shows the live page
        await page.fill("#password", PEOPLE_PASSWORD)
        await page.click("#signin-button")
        await page.wait_for_selector("tr.reading", timeout=15_000)
        await expect(page.locator("tr.device td.q-good")).to_have_count(6, timeout=15_000)
        await expect(page.locator("#overall")).to_have_text("ok", timeout=15_000)
        dom = await page.content()
        assert "Test Viewer (viewer)" in dom
        for room in ("Granulation", "Compression", "Clean corridor"):
            assert room in dom
        assert "Grade D" in dom
        assert "<td>no tags configured</td>" in dom  # the corridor has no instruments
        assert 'data-tag="acme-basel/solid-dose/granulation/trh-gran-01/temperature"' in dom
        assert re.search(r"\d+\.\d\d degC", dom)
        assert re.search(r"\d{1,3}(,\d{3})+ particles/m3", dom), "particle concentration missing"
        assert 'class="q-good">good' in dom
        devices = re.findall(r'<tr class="device" data-device="([\w-]+)">', dom)
        assert sorted(devices) == sorted(DEVICES)
        # every room says whether it has alarms; an excursion shows up as an alarm badge
        await expect(
            page.locator('section[data-room="granulation"] [data-alarm-state]')
        ).to_have_text("no alarms")
        state = page.locator('section[data-room="compression"] .state')
        await expect(state).to_contain_text("in operation")
        await expect(state).to_contain_text("batch B-2026-0001")
        # 21 -> 24.5 degC (alert 24), held until the test ends: the badge cannot race its end
        await hold_excursion(plant, "trh-gran-01", 3.5)
        badge = page.locator('section[data-room="granulation"] [data-alarm-state="unacknowledged"]')
        await expect(badge).to_have_text("1 alarm", timeout=20_000)
        # the plant's alarm beside the box's health, which it does not change
        await expect(page.locator("#alarmsum")).to_have_text(
            "1 alarm, 1 unacknowledged", timeout=20_000
        )
        await expect(page.locator("#overall")).to_have_text("ok")
        row = page.locator('section[data-room="granulation"] tr.alarm')
        await expect(row).to_contain_text("alert high")
        await expect(row).to_contain_text("trh-gran-01 / temperature")
        shot = Path(os.environ.get("GMP_EDGE_SCREENSHOT", tmp_path / "status.png"))
        await page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        (cookie,) = [c for c in await context.cookies() if c["name"] == "gmpe_session"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        session = {"gmpe_session": cookie["value"]}
        async with httpx.AsyncClient(base_url=str(client.base_url), cookies=session) as other:
            assert (await other.get("/api/tags")).status_code == 200  # the session works
            # signing out hides the data again, and the session no longer works
            await page.click("#signout")
            await page.wait_for_selector("#signin-form", state="visible")
            assert await page.locator("#live").is_hidden()
            assert (await other.get("/api/tags")).status_code == 401
        await browser.close()
