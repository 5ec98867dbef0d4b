"""The monitoring engine over a real store: timers survive a restart, limit sets change
only by a signed approval, and the configured limits are checked at load."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from gmp_edge.audit.trail import AuditTrail
from gmp_edge.clock import now_us
from gmp_edge.collector.reading import Cause, Quality, Reading
from gmp_edge.edge.config import ConfigError
from gmp_edge.edge.service import EdgeService
from gmp_edge.historian.store import Store
from gmp_edge.identity.roles import Role
from gmp_edge.limits.model import Threshold
from gmp_edge.monitoring.approval import LimitSetRecords
from gmp_edge.monitoring.engine import Books, MonitoringEngine
from gmp_edge.signatures.manifest import Meaning, SigningRefused
from gmp_edge.signatures.register import SignatureRegister

from .conftest import COMPRESSION, PARTICLES, TEMP, index_of, item, small_plant

S = 1_000_000  # TEMP: action high 24, on-delay 30 s


@pytest.fixture
def env(tmp_path):
    cfg, sha = small_plant().load(tmp_path)
    store = Store(cfg.store.path)
    EdgeService(cfg, sha, store)  # registers the tags
    trail = AuditTrail(cfg.store.path)
    opened: list[Books] = []

    def engine() -> MonitoringEngine:
        books = Books.open(trail)
        opened.append(books)
        e = MonitoringEngine(cfg, sha, store, books)
        e.start()
        return e

    yield cfg, store, trail, engine
    for b in opened:
        b.close()
    trail.close()
    store.close()


def temps(t0: int, seconds: range, value: float) -> list[Reading]:
    return [Reading(TEMP, value, Quality.GOOD, t0 + i * S) for i in seconds]


def test_on_delay_timer_survives_a_restart(env):
    _, store, trail, engine = env
    first = engine()
    t0 = now_us() + 10 * S  # after the limit set the engine put in force as it started
    store.commit(temps(t0, range(20), 25.5))  # 20 s beyond action: still inside the on-delay
    first.step()
    assert first.books.alarms.active() == []
    # the service restarts: a new engine reads its saved state from the database
    second = engine()
    assert second.cursor == first.cursor
    store.commit(temps(t0, range(20, 40), 25.5))  # the excursion goes on past 30 s
    second.step()
    active = {a.kind.value: a for a in second.books.alarms.active()}
    assert set(active) == {"alert_high", "action_high"}
    # the excursion started before the restart: the timer was not reset
    assert active["action_high"].raised_us == t0 + 30 * S
    assert trail.verify()[2] is None


def test_bad_readings_never_trip_limits_but_raise_monitoring_unavailable(env):
    _, store, _, engine = env
    e = engine()
    t0 = now_us() + 10 * S
    store.commit([Reading.bad(TEMP, t0 + i * S, "FC04 timeout", Cause.NETWORK) for i in range(3)])
    e.step()
    (alarm,) = e.books.alarms.active()
    assert alarm.kind.value == "monitoring_unavailable"


def test_a_limit_set_goes_into_force_only_with_an_approval_signature(env):
    cfg, _, trail, engine = env
    e = engine()
    v1 = e.limit_set
    assert v1 is not None and v1.version == 1
    looser = tuple(
        replace(t, action_high=Threshold(26.0)) if t.tag == TEMP else t for t in v1.limits
    )
    # proposed by a QA approver, who therefore cannot also approve it
    proposal = e.books.limit_sets.propose("quinn", v1.with_limits(looser), "new HVAC")
    assert proposal.version == 2 and e.limit_set.version == 1
    reg = SignatureRegister(trail)
    reg.register(LimitSetRecords(e))
    rid = f"{proposal.id}@v2"
    seen = reg.current_hash("limit_set", rid)
    assert seen is not None
    with pytest.raises(SigningRefused, match="separation of duties"):
        reg.sign(
            "limit_set", rid, seen, "quinn", "Quinn QA", Role.QA_APPROVER, Meaning.APPROVAL, ""
        )
    with pytest.raises(SigningRefused, match="may not sign"):
        reg.sign("limit_set", rid, seen, "op", "Otto Operator", Role.OPERATOR, Meaning.APPROVAL, "")
    assert e.limit_set.version == 1
    reg.sign(
        "limit_set", rid, seen, "quincy", "Quincy QA", Role.QA_APPROVER, Meaning.APPROVAL, "ok"
    )
    assert e.limit_set.version == 2 and e.limit_set.approved_by == "quincy"
    assert [t.action_high for t in e.limit_set.limits if t.tag == TEMP] == [Threshold(26.0)]
    # the approval signature still applies to what was approved
    (st,) = reg.manifest("limit_set", rid).signatures
    assert st.valid
    assert [h[1] for h in e.books.limit_sets.history()] == ["approved", "superseded"]
    reg.close()


def problems(change) -> list[str]:
    plant = small_plant()
    change(plant.data)
    with pytest.raises(ConfigError) as info:
        plant.build(Path("plant.toml"))
    return info.value.problems


def limit_key(tag: str) -> str:
    """How a problem names the limits entry of ``tag``: its index and its tag."""
    return f"limits[{index_of(small_plant().data['limits'], tag=tag)}]"


CASES = [
    (
        lambda d: item(d["limits"], tag=TEMP).update(alert_high=24.5),
        f"{limit_key(TEMP)}({TEMP}).alert_high",
    ),
    (
        lambda d: item(d["limits"], tag=TEMP).update(delay_justification=""),
        "delay_justification",
    ),
    (
        lambda d: item(d["limits"], tag=TEMP).update(on_delay_s=-1),
        f"{limit_key(TEMP)}.on_delay_s",
    ),
    (
        lambda d: d["limits"].append({"tag": "acme/solid-dose/x/y/z", "action_high": 1}),
        f"limits[{len(small_plant().data['limits'])}].tag: unknown tag",
    ),
    (  # above the Annex 1 Grade D count for 0.5 µm (3 520 000 /m3)
        lambda d: item(d["limits"], tag=PARTICLES).update(action_high=4_000_000),
        f"{limit_key(PARTICLES)}({PARTICLES}).action_high",
    ),
    (
        lambda d: d["production"].append({"room": "nowhere", "state": "at_rest"}),
        f"production[{len(small_plant().data['production'])}].room: unknown room",
    ),
    (
        lambda d: item(d["production"], room=COMPRESSION).update(state="at_rest"),
        "give either state or state_tag",
    ),
]


@pytest.mark.parametrize(("change", "expected"), CASES)
def test_bad_limits_refuse_to_start_with_the_key_path(change, expected):
    got = problems(change)
    assert any(expected in p for p in got), got


def test_how_far_evaluation_is_behind_the_committed_readings(tmp_path):
    """Health's monitoring_behind: seconds since the oldest reading not yet evaluated was
    received (0 when caught up)."""
    from .conftest import recording

    cfg, sha = small_plant().load(tmp_path)
    with recording(cfg, sha) as box:
        t = now_us()
        assert box.engine.behind_s(t) == 0.0
        box.store.commit([Reading(TEMP, 20.0, Quality.GOOD, t)])
        assert box.engine.behind_s(t + 30_000_000) == pytest.approx(30.0)
        box.engine.step()
        assert box.engine.behind_s(t + 30_000_000) == 0.0


def test_unsaved_steps_are_recomputed_after_a_crash_without_raising_twice(env):
    """The running loop saves the restart state every few seconds, not after every commit:
    a crash in between replays the readings from the saved cursor, reaches the same state
    and raises no alarm a second time."""
    _, store, trail, engine = env
    first = engine()
    t0 = now_us() + 10 * S
    store.commit(temps(t0, range(10), 22.0))
    first.step()  # saved: cursor after the quiet readings
    saved_cursor = first.cursor
    store.commit(temps(t0, range(10, 50), 23.5))  # beyond alert for 40 s: raised
    first.step(persist=False)
    store.commit(temps(t0, range(50, 60), 23.5))
    first.step(persist=False)
    raised = {a.kind.value: a.raised_us for a in first.books.alarms.active()}
    assert set(raised) == {"alert_high"}
    transitions = [e.action for e in trail.entries(record_type="alarm")]
    # killed here: the next start finds the state of the first step
    second = engine()
    assert second.cursor == saved_cursor < first.cursor
    second.step()
    assert second.cursor == first.cursor
    assert {a.kind.value: a.raised_us for a in second.books.alarms.active()} == raised
    assert [e.action for e in trail.entries(record_type="alarm")] == transitions


def test_a_deviation_linked_to_an_excursion_is_saved_at_once(env):
    """The link from an excursion's alarm to its deviation is not recomputed by a replay
    (the alarm is already raised): a step that makes one saves, whatever the loop says."""
    _, store, _, engine = env
    first = engine()
    t0 = now_us() + 10 * S
    store.commit(temps(t0, range(10), 22.0))
    first.step()
    store.commit(temps(t0, range(10, 50), 25.5))  # beyond action: a deviation is raised
    first.step(persist=False)
    assert first.open_excursions
    second = engine()
    assert second.cursor == first.cursor and second.open_excursions == first.open_excursions


@pytest.mark.parametrize("woken", [True, False])
def test_alarm_latency_is_taken_when_the_alarm_is_persisted(env, woken):
    # committed -> alarm persisted: one figure for a step a commit woke, taken when its
    # first alarm is saved (not at the end of the step: the state save is not the alarm)
    _, store, _, engine = env
    e = engine()
    t0 = now_us() + 10 * S
    store.commit(temps(t0, range(40), 25.5))  # past the 30 s on-delay: alert and action
    if woken:
        e.committed()
    e.step()
    assert {a.kind.value for a in e.books.alarms.active()} == {"alert_high", "action_high"}
    assert len(e.stats.alarm_latency_ms) == (1 if woken else 0)
    store.commit(temps(t0, range(40, 45), 25.5))  # still beyond: nothing new is raised
    e.committed()
    e.step()
    assert len(e.stats.alarm_latency_ms) == (1 if woken else 0)
