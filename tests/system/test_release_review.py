"""Release review end to end: the simulated plant runs a batch, a temperature action
excursion and a device outage happen, the review shows both, the deviations block release
until QA closes and signs them, the page shows the chart and blockers and signs a
decision, the PDF report renders, the evidence package verifies and a changed byte fails."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest
import tomli_w
from playwright.async_api import async_playwright, expect

from gmp_edge.edge.config import parse_config
from gmp_edge.simulators.scenario import DisconnectMode, EventKind, ScenarioEvent
from gmp_edge.timefmt import iso
from tests.waiting import until

from .conftest import (
    PEOPLE_PASSWORD,
    caught_up,
    dated_from_today,
    plant_config_data,
    require_tool,
    running_edge,
    us,
    utc_today,
)
from .test_monitoring_scenarios import UNTIL_CLEARED, deviations, hold_excursion, limit

pytestmark = pytest.mark.system
COMP = "acme-basel/solid-dose/compression"
BATCH = "B-2026-0001"


async def _close_all(edge) -> None:
    reviewer = await edge.person("qa.reviewer")
    approver = await edge.person("qa.approver")
    for d in await deviations(edge.client):
        path = f"/api/deviations/{d['id']}"
        r = await reviewer.post(
            f"{path}/investigate",
            json={
                "expected_version": d["version"],
                "investigator": "qa.reviewer",
                "note": "checked HVAC and counter logs",
            },
        )
        assert r.status_code == 200, r.text
        r = await approver.post(
            f"{path}/close",
            json={
                "expected_version": r.json()["version"],
                "final_classification": "major",
                "impact_assessment": "no product impact: tablets in closed containers",
                "root_cause": "HVAC reheat valve",
                "capa_ref": "CAPA-2026-021",
                "user_id": "qa.approver",
                "password": PEOPLE_PASSWORD,
            },
        )
        assert r.status_code == 200, r.text
    await reviewer.aclose()
    await approver.aclose()


async def test_batch_review_release_report_and_evidence(plant, tmp_path):
    temp = f"{COMP}/trh-comp-01/temperature"

    def short_delay(data: dict) -> None:
        limit(data, temp)["on_delay_s"] = 3

    data = plant_config_data(plant, tmp_path / "store.db")
    short_delay(data)
    dated_from_today(data, utc_today())  # no blocker depends on the day it runs
    cfg_path = tmp_path / "plant.toml"
    cfg_path.write_bytes(tomli_w.dumps(data).encode())
    cfg = parse_config(data, cfg_path)
    async with running_edge(cfg, config_path=str(cfg_path)) as edge:
        c = edge.client
        await until(lambda: _batch(c), what="batch from the press")
        # both last until the test clears them: what is checked meanwhile cannot race their end
        await hold_excursion(plant, "trh-comp-01", 4.0)
        await plant.inject(
            ScenarioEvent(
                0,
                EventKind.DEVICE_DISCONNECT,
                "pc-comp-01",
                UNTIL_CLEARED,
                mode=DisconnectMode.RESET,
            )
        )
        store = edge.svc.store
        await until(lambda: _for(c, temp), what="temperature deviation")
        await until(lambda: store.open_gap_tags(), what="the particle counter outage a gap")
        await plant.clear_faults()
        await until(lambda: _ended(c, temp), what="excursion over")
        # the counter is back and has read back its memory (in its first poll), every alarm
        # has returned to normal: nothing after the batch end changes the batch's record
        await until(lambda: not store.open_gap_tags(), what="particle counter back")
        await until(lambda: _no_condition_active(c), what="every alarm back to normal")
        op = await edge.person("operator")
        r = await op.post(f"/api/batches/{BATCH}/end", json={"reason": "compression finished"})
        assert r.status_code == 200, r.text
        await op.aclose()

        # late readings of the batch window (commit interval, OPC UA publishing) first
        (batch,) = await _batch(c)
        await caught_up(edge, us(batch["end"]))
        review = await _settled(c)
        rv = review["review"]
        tags = {t["tag"]: t for t in rv["tags"]}
        assert any(e["level"] == "action" for e in tags[temp]["excursions"])
        outage = tags[f"{COMP}/pc-comp-01/particles_0_5"]
        # the outage is in the record; the counter kept its samples and they were read back
        # from its memory, so completeness (one record per counter cycle) may well be whole
        assert outage["gaps"] and outage["received"]["bad"] > 0
        assert outage["interval_s"] == 1.0 and outage["expected"] is not None
        codes = {b["code"] for b in rv["readiness"]["blockers"]}
        assert "deviation_open" in codes
        assert rv["readiness"]["recommendation"] != "release"
        approver = await edge.person("qa.approver")
        r = await approver.post(
            f"/api/batches/{BATCH}/decision",
            json={
                "decision": "release",
                "comment": "try",
                "review_sha256": review["review_sha256"],
                "user_id": "qa.approver",
                "password": PEOPLE_PASSWORD,
            },
        )
        assert r.status_code == 409 and "blocker" in r.json()["detail"]

        # the reviewer's page: sign in, see the blockers and the chart, sign a hold
        await _page_hold(edge.base_url, tmp_path)
        hold = (await c.get(f"/api/batches/{BATCH}/decisions")).json()
        assert [d["decision"] for d in hold] == ["hold"]
        assert hold[0]["signatures"]["signatures"][0]["meaning"] == "responsibility"

        # QA closes the deviations (signed); release is then possible and signed
        await _close_all(edge)
        review = await _settled(c)
        blockers = review["review"]["readiness"]["blockers"]
        assert not [b for b in blockers if b["code"].startswith("deviation")], blockers
        r = await approver.post(
            f"/api/batches/{BATCH}/decision",
            json={
                "decision": "hold" if blockers else "release",
                "comment": "EM record complete",
                "review_sha256": "0" * 64,
                "user_id": "qa.approver",
                "password": PEOPLE_PASSWORD,
            },
        )
        assert r.status_code == 409 and "changed since" in r.json()["detail"]
        decision = "hold" if blockers else "release"
        r = await approver.post(
            f"/api/batches/{BATCH}/decision",
            json={
                "decision": decision,
                "comment": "EM record complete",
                "review_sha256": review["review_sha256"],
                "user_id": "qa.approver",
                "password": PEOPLE_PASSWORD,
            },
        )
        assert r.status_code == 201, (r.text, blockers)
        assert r.json()["signatures"]["signatures"][0]["valid"] is True
        await approver.aclose()

        # the PDF report for the batch dossier
        r = await c.get(f"/api/batches/{BATCH}/report.pdf")
        assert r.status_code == 200 and r.content.startswith(b"%PDF")
        pdf = tmp_path / "report.pdf"
        pdf.write_bytes(r.content)
        text = subprocess.run(
            [require_tool("pdftotext"), str(pdf), "-"], capture_output=True, text=True, check=True
        ).stdout
        assert BATCH in text and "trh-comp-01" in text

        # the inspector's copy of the excursion deviation's investigation file
        (dev,) = await _for(c, temp)
        r = await c.get(f"/api/deviations/{dev['id']}/report.pdf")
        assert r.status_code == 200 and r.content.startswith(b"%PDF"), r.text[:300]
        (tmp_path / "deviation.pdf").write_bytes(r.content)
        text = subprocess.run(
            [require_tool("pdftotext"), str(tmp_path / "deviation.pdf"), "-"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for want in (
            dev["id"],
            temp,
            "HVAC reheat valve",
            "CAPA-2026-021",
            "approval",
            "valid",
            "condition_active",
            "UTC",
        ):
            assert want in text, want
        assert (await c.get("/api/deviations/DEV-NONE/report.pdf")).status_code == 404

        # the evidence package verifies offline; one changed byte fails it
        r = await c.get(f"/api/batches/{BATCH}/evidence.zip")
        assert r.status_code == 200
        pkg = tmp_path / "evidence.zip"
        pkg.write_bytes(r.content)
        ok = subprocess.run(
            [sys.executable, "-m", "gmp_edge.edge.cli", "evidence", "verify", str(pkg)],
            capture_output=True,
            text=True,
        )
        assert ok.returncode == 0, ok.stdout + ok.stderr
        with zipfile.ZipFile(pkg) as z:
            names = z.namelist()
            assert "manifest.json" in names and "readings.csv" in names
            files = {n: z.read(n) for n in names}
        # the raw data download is the package's readings.csv, byte for byte
        raw = await c.get(f"/api/batches/{BATCH}/readings.csv")
        assert raw.status_code == 200 and raw.headers["content-type"].startswith("text/csv")
        assert raw.content == files["readings.csv"]
        assert raw.content.count(b"\n") > 100
        csv = bytearray(files["readings.csv"])
        csv[len(csv) // 2] ^= 0x01
        files["readings.csv"] = bytes(csv)
        bad = tmp_path / "tampered.zip"
        with zipfile.ZipFile(bad, "w") as z:
            for n in names:
                z.writestr(n, files[n])
        no = subprocess.run(
            [sys.executable, "-m", "gmp_edge.evidence", "verify", str(bad)],
            capture_output=True,
            text=True,
        )
        assert no.returncode == 1 and "readings.csv" in no.stdout + no.stderr

        # the excursion history finds the excursion by batch and level
        page = (await c.get("/api/excursions", params={"batch": BATCH, "level": "action"})).json()
        assert any(x["tag"] == temp and x["deviation_id"] for x in page["items"])


async def _settled(c) -> dict:
    """The review, which must not change when compiled again (a decision binds its hash)."""
    first = (await c.get(f"/api/batches/{BATCH}/review")).json()
    again = (await c.get(f"/api/batches/{BATCH}/review")).json()
    assert again["review_sha256"] == first["review_sha256"], _diff(
        first["review"], again["review"]
    )[:5]
    return first


async def _no_condition_active(c) -> bool:
    return not any(a["condition_active"] for a in (await c.get("/api/alarms")).json())


async def _batch(c):
    return [b for b in (await c.get("/api/batches")).json() if b["id"] == BATCH]


async def _for(c, tag):
    return [d for d in await deviations(c) if d["record"]["evidence"]["tag"] == tag]


async def _ended(c, tag):
    return [d for d in await _for(c, tag) if d["record"]["evidence"].get("end_us")]


async def _page_hold(base_url: str, tmp_path) -> None:
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=require_tool("chromium"), args=["--no-sandbox", "--disable-gpu"]
        )
        page = await (
            await browser.new_context(viewport={"width": 1280, "height": 1400})
        ).new_page()
        refused: list[str] = []  # CSP refusals and script errors would show here (a 401
        # before sign-in and the missing favicon are expected console errors)
        page.on(
            "console",
            lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
        )
        page.on("pageerror", lambda e: refused.append(str(e)))
        await page.goto(f"{base_url}/batch?id={BATCH}")
        await page.fill("#user_id", "qa.approver")
        await page.fill("#password", PEOPLE_PASSWORD)
        await page.click("#signin-button")
        await expect(page.locator("#title")).to_contain_text(BATCH, timeout=20_000)
        await expect(page.locator('#blockers li[data-code="deviation_open"]').first).to_be_visible()
        await expect(page.locator("#chart rect.excursion").first).to_be_attached()
        await expect(page.locator("#chart polyline.mean")).to_be_attached()
        # the page's export links download with the reviewer's session
        href = await page.locator("#report-link").get_attribute("href")
        assert href == f"/api/batches/{BATCH}/report.pdf"
        pdf = await page.request.get(f"{base_url}{href}")
        assert pdf.ok and (await pdf.body()).startswith(b"%PDF")
        devfile = await page.locator("a.devfile").first.get_attribute("href")
        assert devfile and devfile.endswith("/report.pdf")
        assert (await page.request.get(f"{base_url}{devfile}")).ok
        await page.select_option("#decision", "hold")
        await page.fill("#comment", "open deviations: hold until closed")
        await page.fill("#sig_password", PEOPLE_PASSWORD)
        await page.click("#decision-button")
        await expect(page.locator('p.decision[data-decision="hold"]')).to_contain_text(
            "signed by Test Qa_Approver", timeout=20_000
        )
        await page.screenshot(path=str(tmp_path / "batch.png"), full_page=True)
        await browser.close()
        assert not refused, refused


def _diff(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in set(a) | set(b):
            out += _diff(a.get(k), b.get(k), f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out += _diff(x, y, f"{path}[{i}]")
        return out
    return [] if a == b else [(path, str(a)[:80], str(b)[:80])]


async def _counter_command(plant, command: int) -> None:
    """Press start or stop on the compression room's particle counter, over Modbus."""
    from pymodbus.client import AsyncModbusTcpClient

    client = AsyncModbusTcpClient("127.0.0.1", port=plant.modbus_port("gw-compression"))
    assert await client.connect()
    try:
        rr = await client.write_register(1, command, device_id=1)
        assert not rr.isError(), rr
    finally:
        client.close()


async def test_a_back_dated_batch_and_a_stopped_counter_reach_the_release_checklist(
    plant, tmp_path
):
    """Issue 13: a batch registered after an excursion gets the deviation raised before it
    existed, a counter that stops sampling is Bad with a gap, and the counter's completeness
    is judged by its own cycle, not by how often it is polled."""
    from gmp_edge.simulators.particle_counter import CMD_START, CMD_STOP

    temp = f"{COMP}/trh-comp-01/temperature"
    p05 = f"{COMP}/pc-comp-01/particles_0_5"
    data = plant_config_data(plant, tmp_path / "store.db")
    limit(data, temp)["on_delay_s"] = 3
    dated_from_today(data, utc_today())
    cfg_path = tmp_path / "plant.toml"
    cfg_path.write_bytes(tomli_w.dumps(data).encode())
    cfg = parse_config(data, cfg_path)
    async with running_edge(cfg, config_path=str(cfg_path)) as edge:
        c, store = edge.client, edge.svc.store
        await until(lambda: _batch(c), what="batch from the press")
        await hold_excursion(plant, "trh-comp-01", 4.0)
        await until(lambda: _for(c, temp), what="temperature deviation")
        await plant.clear_faults()
        await until(lambda: _ended(c, temp), what="excursion over")
        (dev,) = await _for(c, temp)

        # the counter stops sampling (its pump off): Bad readings that say so, and a gap
        await _counter_command(plant, CMD_STOP)

        def not_sampling() -> bool:
            r = edge.svc.latest.get(p05)
            return r is not None and (r.message or "").startswith("counter not sampling")

        await until(not_sampling, what="the stopped counter reading Bad")
        await until(lambda: p05 in store.open_gap_tags(), what="the stopped counter's gap")
        await _counter_command(plant, CMD_START)
        await until(lambda: p05 not in store.open_gap_tags(), what="the counter sampling again")
        await until(lambda: _no_condition_active(c), what="every alarm back to normal")

        # registered afterwards, back-dated to before the excursion (an MES catching up)
        start = dev["record"]["evidence"]["start_us"] - 5_000_000
        op = await edge.person("operator")
        r = await op.post(
            "/api/batches",
            json={
                "id": "B-LATE-1",
                "product": "Ibuprofen 400 mg",
                "rooms": ["compression"],
                "start": iso(start),
                "reason": "registered after the fact",
            },
        )
        assert r.status_code == 201, r.text
        r = await op.post("/api/batches/B-LATE-1/end", json={"reason": "entered from paper"})
        assert r.status_code == 200, r.text
        await op.aclose()
        (late,) = [b for b in (await c.get("/api/batches")).json() if b["id"] == "B-LATE-1"]
        assert dev["id"] in late["deviations"]  # before the fix: none linked
        seen = (await c.get(f"/api/deviations/{dev['id']}")).json()
        assert "B-LATE-1" in seen["batches"] and "B-LATE-1" not in seen["affected_batch_ids"]

        await caught_up(edge, us(late["end"]))
        rv = (await c.get("/api/batches/B-LATE-1/review")).json()["review"]
        assert dev["id"] in [d["id"] for d in rv["deviations"]]
        codes = {b["code"] for b in rv["readiness"]["blockers"]}
        assert "deviation_open" in codes, rv["readiness"]
        assert rv["readiness"]["recommendation"] != "release"
        counter = next(t for t in rv["tags"] if t["tag"] == p05)
        assert any(g["message"].startswith("counter not sampling") for g in counter["gaps"])
        # one record per counter cycle (1 s samples) is expected, not one per 2 s poll
        assert counter["interval_s"] == 1.0
        assert counter["expected"] >= counter["received"]["good"] > 0
