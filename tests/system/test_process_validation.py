"""Process validation end to end: the simulated press runs two batches (the second starts
when the press's batch id changes, an operator ends it); an inspector gets the process
validation summary with both batches and capability figures that match the stored
readings (computed here independently, straight from the store), the equipment view shows
the press's qualification, and the page shows the table, the chart and the equipment."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from playwright.async_api import async_playwright, expect

from gmp_edge.edge.config import parse_config
from tests.waiting import until

from .conftest import (
    caught_up,
    dated_from_today,
    plant_config_data,
    require_tool,
    running_edge,
    us,
    utc_today,
)

pytestmark = pytest.mark.system
PRESS = "acme-basel/solid-dose/compression/press-01"
FORCE = f"{PRESS}/main_compression_force"
PRODUCT = "Paracetamol 500 mg tablets"
B1, B2 = "B-2026-0001", "B-2026-0002"
PER_BATCH = 8  # Good force readings each batch runs for (capability needs a few)


async def test_process_validation_and_equipment_for_the_inspector(plant, tmp_path):
    data = plant_config_data(plant, tmp_path / "store.db")
    qualified_until = dated_from_today(data, utc_today())
    cfg = parse_config(data, tmp_path / "plant.toml")
    async with running_edge(cfg) as edge:
        c = edge.client  # an inspector's token
        (b1,) = await until(lambda: _batch(c, B1), what="first batch from the press")
        # each batch runs until it has enough force readings (not for a time)
        await until(lambda: _good_since(edge, us(b1["start"])), what=f"{B1} force readings")
        await plant.opcua_server("press-01").set_batch(B2, "EXECUTE")
        (b2,) = await until(lambda: _batch(c, B2), what="second batch from the press")
        first = (await _batch(c, B1))[0]
        assert first["end"] is not None  # a new batch id ends the previous batch
        await until(lambda: _good_since(edge, us(b2["start"])), what=f"{B2} force readings")
        op = await edge.person("operator")
        r = await op.post(f"/api/batches/{B2}/end", json={"reason": "compression finished"})
        assert r.status_code == 200, r.text
        await op.aclose()
        (b2,) = await _batch(c, B2)
        # late readings of the batch windows (commit interval, OPC UA publishing) are in
        await caught_up(edge, us(b2["end"]))

        inspector = await edge.person("inspector")
        params = {"product": PRODUCT, "min_batches": 2, "start": "2026-01-01T00:00:00Z"}
        pv = await _summary(inspector, params)
        assert await _summary(inspector, params) == pv  # settled: the same again
        assert [b["id"] for b in pv["batches"]] == [B1, B2]
        cpps = {x["tag"]: x for x in pv["cpps"]}
        force = cpps[FORCE]
        assert (force["lsl"], force["usl"]) == (12.0, 18.0)  # the configured action limits
        assert force["verdict"] in {"capable", "marginal", "not capable", "insufficient data"}
        assert "a person" in force["text"]
        pooled = []
        for b in force["batches"]:
            v = _stored_good(cfg.store.path, FORCE, b["start_us"], b["end_us"])
            assert v.size >= PER_BATCH, (b["batch_id"], v.size)
            pooled.append(v)
            mr = np.abs(np.diff(v)).mean() / 1.128
            s = v.std(ddof=1)
            near = min(18.0 - v.mean(), v.mean() - 12.0)
            cap = b["capability"]
            assert b["n"] == cap["n"] == v.size
            assert b["mean"] == pytest.approx(v.mean(), rel=1e-9)
            assert b["std"] == pytest.approx(s, rel=1e-9)
            assert (b["min"], b["max"]) == (v.min(), v.max())
            assert cap["cp"] == pytest.approx(6 / (6 * mr), rel=1e-9)
            assert cap["cpk"] == pytest.approx(near / (3 * mr), rel=1e-9)
            assert cap["ppk"] == pytest.approx(near / (3 * s), rel=1e-9)
            assert b["limit_set"] and b["excursions"] == 0
        allv = np.concatenate(pooled)
        mr_in = np.concatenate([np.abs(np.diff(v)) for v in pooled]).mean() / 1.128
        assert force["overall"]["n"] == allv.size
        assert force["overall"]["cpk"] == pytest.approx(
            min(18.0 - allv.mean(), allv.mean() - 12.0) / (3 * mr_in), rel=1e-9
        )
        assert force["trend"]["points"] == 2
        # press parameters without limits are listed, and say why there is no verdict
        speed = cpps[f"{PRESS}/turret_speed"]
        assert speed["verdict"] == "insufficient data" and speed["batches"][0]["n"] > 0

        before = utc_today()
        eq = {e["id"]: e for e in (await inspector.get("/api/equipment")).json()}
        after = utc_today()  # the product counts days in UTC; a midnight may pass meanwhile
        press = eq["press-01"]
        assert press["qualified_until"] == qualified_until.isoformat()
        assert press["qualification_status"] == "qualified"
        left = {(qualified_until - day).days for day in (before, after)}
        assert press["qualification_days_remaining"] in left, (press, left)
        assert press["calibration_status"] == "not_recorded"
        assert press["batches_used"] == 2 and press["out_of_status"] == []
        await inspector.aclose()

        await _page(edge.base_url, tmp_path, qualified_until.isoformat())


def _stored_good(path, tag: str, start_us: int, end_us: int) -> np.ndarray:
    """Good values of ``tag`` in ``[start_us, end_us)`` by time, read from the readings
    table itself (not through the product's readers)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "select r.value from readings r join tags t on t.id = r.tag_id where t.path = ?"
            " and r.ts_us >= ? and r.ts_us < ? and r.quality = 0 and r.value is not null"
            " order by r.ts_us, r.rowid",
            (tag, start_us, end_us),
        ).fetchall()
    finally:
        conn.close()
    return np.array([x for (x,) in rows], dtype=np.float64)


def _good_since(edge, start_us: int) -> bool:
    """The store holds PER_BATCH Good force readings stamped at or after ``start_us``."""
    got = _stored_good(edge.svc.cfg.store.path, FORCE, start_us, 2**62)
    return got.size >= PER_BATCH


async def _batch(c, batch_id: str) -> list[dict]:
    return [b for b in (await c.get("/api/batches")).json() if b["id"] == batch_id]


async def _summary(c, params: dict) -> dict:
    """The process validation summary, without the time it was compiled."""
    r = await c.get("/api/process-validation", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    body.pop("compiled"), body.pop("compiled_us")
    return body


async def _page(base_url: str, tmp_path, qualified_until: str) -> None:
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=require_tool("chromium"), args=["--no-sandbox", "--disable-gpu"]
        )
        page = await (
            await browser.new_context(viewport={"width": 1280, "height": 1600})
        ).new_page()
        problems: list[str] = []  # script errors, CSP refusals, failed requests
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        failed: list[str] = []
        page.on(
            "response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None
        )
        await page.goto(f"{base_url}/validation?product={PRODUCT}")
        await page.fill("#user_id", "inspector")
        await page.fill("#password", "People-Pass-2026!")
        await page.click("#signin-button")
        cpp = page.locator(f'section.cpp[data-tag="{FORCE}"]')
        await expect(cpp).to_be_visible(timeout=20_000)
        await expect(cpp.locator("tr.batchrow")).to_have_count(2)
        await expect(cpp.locator("svg circle.mean")).to_have_count(2)
        await expect(cpp.locator("svg line.limit.usl")).to_be_attached()
        await expect(cpp.locator(".verdict")).not_to_be_empty()
        await expect(page.locator('tr.eqrow[data-equipment="press-01"]')).to_contain_text(
            qualified_until
        )
        await page.screenshot(path=str(tmp_path / "validation.png"), full_page=True)
        await browser.close()
        # expected: the sign-in probe before signing in, and the browser's favicon guess
        expected = [f for f in failed if f.endswith(("/api/session", "/favicon.ico"))]
        assert failed == expected and len(expected) <= 2, failed
        assert [p for p in problems if "Failed to load resource" not in p] == [], problems
