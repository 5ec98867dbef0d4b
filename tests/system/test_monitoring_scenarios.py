"""Limits, alarms and deviations end to end: the simulated plant misbehaves over real
Modbus TCP and OPC UA, the edge collects, evaluates, alarms and raises deviations, and
people act through the API."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from gmp_edge.edge.config import parse_config
from gmp_edge.historian.store import Store
from gmp_edge.simulators.scenario import DisconnectMode, EventKind, ScenarioEvent
from tests.waiting import until

from .conftest import PEOPLE_PASSWORD, plant_config_data, running_edge

pytestmark = pytest.mark.system

GRAN = "acme-basel/solid-dose/granulation"
COMP = "acme-basel/solid-dose/compression"
# a disturbance that lasts until the test ends it (plant.clear_faults) or the test ends:
# what the test checks while it lasts cannot race its end
UNTIL_CLEARED = 3600


def config(plant, tmp_path, change: Callable[[dict], None] | None = None):
    data = plant_config_data(plant, tmp_path / "store.db")
    if change:
        change(data)
    return parse_config(data, tmp_path / "plant.toml")


def limit(data: dict, tag: str) -> dict:
    return next(e for e in data["limits"] if e["tag"] == tag)


async def alarms(client, **match: str) -> list[dict]:
    got = (await client.get("/api/alarms")).json()
    return [a for a in got if all(a.get(k) == v for k, v in match.items())]


async def deviations(client) -> list[dict]:
    return (await client.get("/api/deviations")).json()


def event(kind: EventKind, target: str, duration_s: float, **kw: Any) -> ScenarioEvent:
    return ScenarioEvent(at_s=0, kind=kind, target=target, duration_s=duration_s, **kw)


async def hold_excursion(plant, target: str, magnitude: float) -> None:
    """A temperature excursion at its full magnitude from now until ``plant.clear_faults()``.

    An excursion ramps up over the first third of its duration: one lasting until cleared
    would take many minutes to get there. Scheduled on the plant's time axis so that its
    ramp-up lies in the past, its plateau starts now (a step) and holds for 40 minutes.
    """
    duration = 3 * UNTIL_CLEARED
    plant.scenario.add(
        ScenarioEvent(
            plant.elapsed_s - duration / 3,
            EventKind.TEMPERATURE_EXCURSION,
            target,
            duration,
            magnitude=magnitude,
        )
    )
    await plant.step()


async def test_alert_only_temperature_alarm_no_deviation_and_operator_actions(plant, tmp_path):
    tag = f"{GRAN}/trh-gran-01/temperature"
    async with running_edge(config(plant, tmp_path)) as edge:
        c = edge.client
        await hold_excursion(plant, "trh-gran-01", 3.5)  # 21 -> 24.5 degC: alert 24, action 25
        (alarm,) = await until(lambda: alarms(c, tag=tag), what="alert alarm")
        assert alarm["kind"] == "alert_high" and alarm["state"] == "unacknowledged"
        assert alarm["priority"] == "low"  # configured medium; alerts one step lower
        assert alarm["limit_at_trip"] == 24.0 and alarm["value_at_trip"] > 24.0
        assert alarm["limit_set"] == "solid-dose-em v1" and alarm["raised"].endswith("Z")
        # an operator acknowledges with a comment; a viewer may not; no comment is refused
        op = await edge.person("operator")
        viewer = await edge.person("viewer")
        r = await viewer.post(
            "/api/alarms/acknowledge", json={"alarm_id": alarm["id"], "comment": "seen"}
        )
        assert r.status_code == 403
        r = await op.post("/api/alarms/acknowledge", json={"alarm_id": alarm["id"]})
        assert r.status_code == 422
        r = await op.post(
            "/api/alarms/acknowledge",
            json={"alarm_id": alarm["id"], "comment": "HVAC technician informed"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["acknowledged_by"] == "operator"
        # acknowledging again: not allowed in that state, nothing changes
        r = await op.post(
            "/api/alarms/acknowledge", json={"alarm_id": alarm["id"], "comment": "again"}
        )
        assert r.status_code == 409
        # the excursion passes: the alarm returns to normal; never a deviation (the engine
        # has evaluated the whole excursion by the time it clears the alarm)
        await plant.clear_faults()
        await until(lambda: _not(alarms(c, tag=tag)), what="return to normal")
        assert await deviations(c) == []
        hist = (await c.get("/api/alarms/history", params={"tag": tag})).json()
        assert [h["event"] for h in hist] == [
            "condition_active",
            "acknowledge",
            "condition_cleared",
        ]
        assert hist[1]["actor"] == "operator" and hist[1]["reason"] == "HVAC technician informed"
        metrics = (await c.get("/api/alarms/metrics")).json()
        assert metrics["annunciated"] == 1 and metrics["chattering"] == []
        audit = (await c.get("/api/audit", params={"record_type": "alarm"})).json()
        assert [a["action"] for a in audit][-3:] == [
            "alarm.condition_active",
            "alarm.acknowledge",
            "alarm.condition_cleared",
        ]
        # the live page's data carries the alarm state per room
        for client in (op, viewer):
            await client.aclose()


async def _not(coro: Awaitable[Any]) -> bool:
    return not await coro


async def test_action_excursion_past_on_delay_raises_classified_deviation_linked_to_batch(
    plant, tmp_path
):
    tag = f"{COMP}/trh-comp-01/temperature"

    def short_delay(data: dict) -> None:
        limit(data, tag)["on_delay_s"] = 3  # keeps the test short; justification stays

    async with running_edge(config(plant, tmp_path, short_delay)) as edge:
        c = edge.client
        batches = await until(lambda: _json(c, "/api/batches"), what="batch from the press")
        assert batches[0]["id"] == "B-2026-0001" and batches[0]["in_progress"]
        await hold_excursion(plant, "trh-comp-01", 4.0)  # 21.5 -> 25.5: action 24
        # the same disturbance also drags RH down (absolute humidity stays): find ours
        (dev,) = await until(lambda: _for_tag(c, tag), what="deviation")
        assert dev["source"] == "excursion" and dev["status"] == "open"
        assert dev["proposed_classification"] in ("major", "critical")
        assert dev["affected_batch_ids"] == ["B-2026-0001"]
        ev = dev["record"]["evidence"]
        assert ev["tag"] == tag and ev["limit_set_id"] == "solid-dose-em"
        assert ev["limit_set_version"] == 1 and ev["production_state"] == "in_operation"
        assert dev["report_due"].endswith("Z") and dev["close_due"] > dev["report_due"]
        # the excursion ends: end, duration and peak are recorded on the deviation
        await plant.clear_faults()
        dev = await until(lambda: _ended(c, dev["id"]), what="excursion end recorded")
        ev = dev["record"]["evidence"]
        assert ev["end_us"] > ev["start_us"] and ev["peak"] > 24.0
        assert dev["id"] in (await _json(c, "/api/batches"))[0]["deviations"]
        await _qa_lifecycle(edge, dev)


def _good_after(store: Store, tag: str, after_id: int) -> list[tuple[int, float]]:
    """(reading id, value) of the tag's Good readings committed after ``after_id``."""
    conn = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True)
    try:
        return conn.execute(
            "select r.rowid, r.value from readings r join tags t on t.id = r.tag_id"
            " where t.path = ? and r.rowid > ? and r.quality = 0 order by r.rowid",
            (tag, after_id),
        ).fetchall()
    finally:
        conn.close()


async def _for_tag(c, tag: str) -> list[dict]:
    return [d for d in await deviations(c) if d["record"]["evidence"]["tag"] == tag]


async def _json(c, path: str) -> Any:
    return (await c.get(path)).json()


async def _ended(c, dev_id: str) -> dict | None:
    d = (await c.get(f"/api/deviations/{dev_id}")).json()
    return d if d["record"]["evidence"].get("end_us") else None


async def _qa_lifecycle(edge, dev: dict) -> None:
    reviewer = await edge.person("qa.reviewer")
    approver = await edge.person("qa.approver")
    path = f"/api/deviations/{dev['id']}"
    v = dev["version"]
    r = await reviewer.post(
        f"{path}/investigate",
        json={
            "expected_version": v,
            "investigator": "qa.reviewer",
            "note": "HVAC reheat valve stuck; checking logs",
        },
    )
    assert r.status_code == 200, r.text
    v2 = r.json()["version"]
    # a second person acting on the old version at the same time is refused
    r = await reviewer.post(
        f"{path}/investigate",
        json={"expected_version": v, "investigator": "qa.reviewer", "note": "again"},
    )
    assert r.status_code in (400, 409)
    body = {
        "expected_version": v2,
        "final_classification": "major",
        "impact_assessment": "Product temperature-insensitive; no impact on B-2026-0001",
        "root_cause": "Reheat valve actuator failure",
        "user_id": "qa.approver",
        "password": PEOPLE_PASSWORD,
    }
    r = await approver.post(f"{path}/close", json=body)  # major needs a CAPA reference
    assert r.status_code == 400 and "capa" in r.text.lower()
    r = await approver.post(
        f"{path}/close", json={**body, "capa_ref": "CAPA-2026-017", "password": "Wrong-Pass-2026!"}
    )
    assert r.status_code == 401
    assert (await edge.client.get(path)).json()["status"] == "under_investigation"
    r = await approver.post(f"{path}/close", json={**body, "capa_ref": "CAPA-2026-017"})
    assert r.status_code == 200, r.text
    closed = r.json()
    assert closed["status"] == "closed"
    (sig,) = closed["signatures"]["signatures"]
    assert (
        sig["meaning"] == "approval" and sig["valid"] and sig["printed_name"] == "Test Qa_Approver"
    )
    actions = [e["action"] for e in closed["audit_trail"]]
    assert actions[0] == "deviation.raise" and "deviation.close" in actions
    assert actions[-1] == "signature.executed"
    await reviewer.aclose()
    await approver.aclose()


async def test_dp_inversion_within_door_grace_is_ignored_longer_raises_deviation(plant, tmp_path):
    tag = f"{GRAN}/dp-gran-01/dp_granulation_corridor"

    def grace(data: dict) -> None:
        limit(data, tag)["on_delay_s"] = 5

    async with running_edge(config(plant, tmp_path, grace)) as edge:
        c = edge.client
        store = edge.svc.store
        since = store.last_reading_id()
        await plant.inject(event(EventKind.DP_INVERSION, "dp-gran-01", 2, channel=1))

        def back_to_normal() -> int | None:
            """The first reading of the tag back above the alert limit after inverted ones."""
            rows = _good_after(store, tag, since)
            inverted = [i for i, (_, v) in enumerate(rows) if v < 0]
            if not inverted:
                return None
            return next((rid for rid, v in rows[inverted[-1] + 1 :] if v >= 13.0), None)

        normal = await until(back_to_normal, what="the 2 s inversion in the data, then over")
        # delays are judged at readings: once the engine has evaluated a normal reading after
        # the inversion, its pending on-delay is gone and no alarm can come from it
        await until(lambda: edge.parts.engine.cursor >= normal, what="engine past it")
        assert await alarms(c, tag=tag) == [] and await deviations(c) == []
        await plant.inject(event(EventKind.DP_INVERSION, "dp-gran-01", UNTIL_CLEARED, channel=1))
        (dev,) = await until(lambda: deviations(c), what="DP deviation")
        assert dev["record"]["evidence"]["tag"] == tag
        kinds = {a["kind"] for a in await alarms(c, tag=tag)}
        assert {"action_low", "alert_low"} <= kinds


async def test_particle_burst_in_grade_c_during_operation(plant, tmp_path):
    tag = f"{GRAN}/pc-gran-01/particles_0_5"

    def grade_c(data: dict) -> None:
        room = next(r for r in data["rooms"] if r["id"] == "granulation")
        room["grade"], room["iso_class"] = "C", 7
        e = limit(data, tag)
        for k in ("alert_high", "action_high"):
            e.pop(k)
        e["preset"] = "annex1"
        e["applies_in"] = ["in_operation"]

    async with running_edge(config(plant, tmp_path, grade_c)) as edge:
        c = edge.client
        ls = (await c.get("/api/limit-sets")).json()[0]
        (entry,) = [t for t in ls["limits"] if t["tag"] == tag]
        assert entry["action_high"]["value"] == 3_520_000  # Annex 1 Table 5, grade C
        await plant.inject(
            event(EventKind.PARTICLE_BURST, "pc-gran-01", UNTIL_CLEARED, magnitude=40)
        )
        (dev,) = await until(lambda: deviations(c), what="particle deviation")
        assert dev["record"]["evidence"]["grade"] == "C"
        assert dev["record"]["evidence"]["peak"] > 3_520_000


async def test_press_force_drift_out_of_trend_first_then_deviation(plant, tmp_path):
    tag = f"{COMP}/press-01/main_compression_force"
    async with running_edge(config(plant, tmp_path)) as edge:
        c = edge.client
        await plant.inject(
            event(EventKind.PRESS_FORCE_DRIFT, "press-01", UNTIL_CLEARED, magnitude=30)
        )
        (dev,) = await until(lambda: deviations(c), what="force deviation")
        hist = (await c.get("/api/alarms/history", params={"tag": tag})).json()
        raised = [
            (h["alarm_id"].split("#")[1], h["at"]) for h in hist if h["event"] == "condition_active"
        ]
        kinds = [k for k, _ in raised]
        assert kinds.index("oot") < kinds.index("action_high"), raised
        assert dev["affected_batch_ids"] == ["B-2026-0001"]


async def test_device_disconnect_during_batch_is_a_monitoring_loss_deviation(plant, tmp_path):
    async with running_edge(config(plant, tmp_path)) as edge:
        c = edge.client
        mes = await edge.person("operator")
        r = await mes.post(
            "/api/batches",
            json={"id": "G-2026-0042", "product": "Granulate X", "rooms": ["granulation"]},
        )
        assert r.status_code == 201, r.text
        await plant.inject(
            event(
                EventKind.DEVICE_DISCONNECT, "pc-gran-01", UNTIL_CLEARED, mode=DisconnectMode.RESET
            )
        )
        (dev,) = await until(lambda: deviations(c), what="monitoring-loss deviation")
        assert dev["source"] == "monitoring_loss"
        assert dev["affected_batch_ids"] == ["G-2026-0042"]
        assert dev["record"]["evidence"]["tag"] == f"{GRAN}/pc-gran-01/particles_0_5"
        await mes.aclose()


async def test_engineer_proposes_what_if_and_qa_approves_by_signature(api):
    client, _, parts = api
    tag = f"{GRAN}/trh-gran-01/temperature"
    engineer = await _person(client, "engineer")
    approver = await _person(client, "qa.approver")
    try:
        current = (await client.get("/api/limit-sets")).json()[0]
        assert current["status"] == "approved" and current["version"] == 1
        tighter = [dict(t) for t in current["limits"]]
        for t in tighter:
            if t["tag"] == tag:
                t["alert_high"] = {"value": 20.5, "inclusive": False}  # below today's 21 degC
                t["action_high"] = {"value": 20.8, "inclusive": False}
        # contradicting limits are refused with every problem named
        bad = [dict(t) for t in tighter]
        for t in bad:
            if t["tag"] == tag:
                t["alert_high"] = {"value": 30.0, "inclusive": False}
        r = await engineer.post("/api/limit-sets", json={"reason": "x", "limits": bad})
        assert r.status_code == 400 and "alert" in r.text
        r = await engineer.post(
            "/api/limit-sets", json={"reason": "tighter after HVAC upgrade", "limits": tighter}
        )
        assert r.status_code == 201, r.text
        proposal = r.json()
        assert proposal["status"] == "proposed" and proposal["version"] == 2
        # what-if over the data already stored: writes nothing, finds the would-be excursions
        n_audit = len((await client.get("/api/audit")).json())
        end = datetime.fromisoformat((await client.get("/api/health")).json()["now"])
        period = {"start": (end - timedelta(hours=1)).isoformat(), "end": end.isoformat()}
        r = await engineer.post("/api/limit-sets/solid-dose-em/2/what-if", json=period)
        assert r.status_code == 200, r.text
        wi = r.json()
        assert wi["excursions"] >= 1 and wi["per_tag"][tag]["excursions"]["action_high"] >= 1
        assert len((await client.get("/api/audit")).json()) == n_audit
        # the engineer cannot approve their own proposal; the QA approver signs it into force
        body = {
            "record_type": "limit_set",
            "record_id": proposal["record_id"],
            "content_sha256": proposal["content_sha256"],
            "meaning": "approval",
            "reason": "reviewed what-if",
            "password": PEOPLE_PASSWORD,
        }
        r = await engineer.post("/api/signatures", json={**body, "user_id": "engineer"})
        assert r.status_code == 403
        r = await approver.post("/api/signatures", json={**body, "user_id": "qa.approver"})
        assert r.status_code == 201, r.text
        versions = {v["version"]: v for v in (await client.get("/api/limit-sets")).json()}
        assert versions[2]["status"] == "approved" and versions[2]["approved_by"] == "qa.approver"
        assert versions[1]["status"] == "superseded"
        assert versions[2]["signatures"]["signatures"][0]["valid"] is True
        assert parts.engine.limit_set.version == 2
        # the new limits are in force: the room's temperature now trips them
        await until(lambda: alarms(client, tag=tag), what="alarm under the new limits")
    finally:
        await engineer.aclose()
        await approver.aclose()


async def _person(client, user_id: str):
    import httpx

    c = httpx.AsyncClient(base_url=str(client.base_url), timeout=10)
    r = await c.post("/api/session", json={"user_id": user_id, "password": PEOPLE_PASSWORD})
    assert r.status_code == 200, r.text
    c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return c
