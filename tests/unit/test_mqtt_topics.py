"""MQTT topics, payloads, batch-command validation and the RBE/rate filter (pure, no broker)."""

from __future__ import annotations

import json
import re

import pytest
from pydantic import ValidationError

from gmp_edge.collector.reading import Quality
from gmp_edge.config import validation_context
from gmp_edge.edge.config import DOMAIN_CHECKS
from gmp_edge.historian.store import StoredReading
from gmp_edge.mqttlink import MqttConfig, ReadingFilter, ReadingsPolicy, TopicError, Topics
from gmp_edge.mqttlink import payloads as pl
from gmp_edge.mqttlink.topics import UNASSIGNED_ROOM, make_prefix, room_of, split_tag

S = 1_000_000
T0 = 1_790_000_000 * S
T = Topics.for_site("gmp-edge/{site}", "acme")


@pytest.mark.parametrize(
    ("tag", "topic"),
    [
        ("acme/solid-dose/granulation/dp-01/dp", "gmp-edge/acme/solid-dose/granulation/dp-01/dp"),
        ("acme/a/r/e/s", "gmp-edge/acme/a/r/e/s"),
        ("acme/a b/Raum-ä/e.1/sig_2", "gmp-edge/acme/a b/Raum-ä/e.1/sig_2"),
    ],
)
def test_reading_topics(tag, topic):
    assert T.reading(tag) == topic


@pytest.mark.parametrize(
    ("tag", "error"),
    [
        ("acme/a/r/e", "expected site/area/room/equipment/signal, got 4"),
        ("acme/a/r/e/s/x", "got 6 levels"),
        ("acme/a//e/s", "room: empty topic level"),
        ("acme/a/r+1/e/s", "'+' (wildcard)"),
        ("acme/a/r/e#/s", "'#' (wildcard)"),
        ("acme/a/r/e/s\x00", "NUL"),
        ("other/a/r/e/s", "site 'other' is not this box's site 'acme'"),
    ],
)
def test_unusable_tags_are_refused_clearly(tag, error):
    with pytest.raises(TopicError, match=re.escape(error)):
        T.reading(tag)


def test_event_status_and_command_topics():
    assert T.alarm_events("granulation") == "gmp-edge/acme/events/alarms/granulation"
    assert T.alarm_events_all == "gmp-edge/acme/events/alarms/+"
    assert T.deviation_events == "gmp-edge/acme/events/deviations"
    assert T.edge_status == "gmp-edge/acme/status/edge"
    assert T.room_status("compression") == "gmp-edge/acme/status/rooms/compression"
    assert T.device_status("gw-01") == "gmp-edge/acme/status/devices/gw-01"
    assert T.batch_commands == "gmp-edge/acme/commands/batches"
    assert T.rejected_commands == "gmp-edge/acme/commands/rejected"
    for bad in ("", "a/b", "r#", "r+"):
        with pytest.raises(TopicError):
            T.room_status(bad)
        with pytest.raises(TopicError):
            T.device_status(bad)


@pytest.mark.parametrize(
    ("template", "site", "prefix"),
    [
        ("gmp-edge/{site}", "acme", "gmp-edge/acme"),
        ("plant/{site}/edge", "basel-1", "plant/basel-1/edge"),
        ("fixed", "acme", "fixed"),
    ],
)
def test_prefix(template, site, prefix):
    assert make_prefix(template, site) == prefix


@pytest.mark.parametrize(
    ("template", "site", "error"),
    [
        ("gmp-edge/{plant}", "acme", "only the placeholder"),
        ("gmp-edge/{site}/", "acme", "empty topic level"),
        ("$SYS/{site}", "acme", "reserved"),
        ("gmp/#", "acme", "wildcard"),
        ("gmp-edge/{site}", "a/b", "site"),
        ("gmp-edge/{site}", "a+", "wildcard"),
    ],
)
def test_bad_prefixes(template, site, error):
    with pytest.raises(TopicError, match=error):
        make_prefix(template, site)


def test_room_of_and_split():
    assert room_of("acme/a/granulation/e/s") == "granulation"
    assert room_of("acme/a") == UNASSIGNED_ROOM
    assert room_of("acme/a/r#/e/s") == UNASSIGNED_ROOM
    assert split_tag("s/a/r/e/x") == ("s", "a", "r", "e", "x")


# ----------------------------------------------------------------------------- config


def test_config_defaults_and_refusals():
    cfg = MqttConfig(host="broker")
    assert (cfg.port, cfg.qos_readings, cfg.qos_events, cfg.session_expiry_s) == (1883, 0, 1, 3600)
    assert cfg.readings.mode == "rbe" and cfg.readings.deadband == {}
    assert cfg.effective_client_id("acme") == "gmp-edge-acme"
    assert cfg.password() is None
    with pytest.raises(ValidationError, match="extra"):
        MqttConfig.model_validate({"host": "b", "hots": "x"})
    # the topic rules are the MQTT link's: the loader hands them to the schema as context
    checked = validation_context(DOMAIN_CHECKS)
    with pytest.raises(ValidationError, match="only the placeholder"):
        MqttConfig.model_validate({"host": "b", "topic_prefix": "x/{plant}"}, context=checked)
    with pytest.raises(TopicError, match="only the placeholder"):  # and the publisher's
        Topics.for_site(MqttConfig(host="b", topic_prefix="x/{plant}").topic_prefix, "acme")
    with pytest.raises(ValidationError, match="environment variable name"):
        MqttConfig(host="b", password_env="hunter2!")
    with pytest.raises(ValidationError, match="deadband must be >= 0"):
        MqttConfig.model_validate({"host": "b", "readings": {"deadband": {"dp": -1}}})
    with pytest.raises(ValidationError, match="go together"):
        MqttConfig.model_validate({"host": "b", "tls": {"enabled": True, "cert_file": "c.pem"}})
    cfg = MqttConfig(host="b", username="edge", password_env="MQTT_PW")
    assert cfg.password({"MQTT_PW": "s3cret"}) == "s3cret"
    with pytest.raises(ValueError, match="MQTT_PW is not set"):
        cfg.password({})


# ----------------------------------------------------------------------------- payloads


def sr(tag="s/a/r/e/x", ts=T0, value=1.0, q=Quality.GOOD, src=None, msg=None, cause=None):
    return StoredReading(tag, ts if src is None else src, ts, src, value, q, msg, cause)


def test_reading_body_matches_its_schema():
    body = pl.reading_body(7, sr(value=2.5, src=T0 - 3), "Pa")
    assert body["ts"] == body["ts_source"] == "2026-09-21T14:13:19.999997Z"
    assert body["ts_edge"] == "2026-09-21T14:13:20.000000Z"
    assert (body["seq"], body["value"], body["unit"], body["quality"]) == (7, 2.5, "Pa", "good")
    assert pl.validate(body, pl.SCHEMAS[pl.READING]) == []
    bad = pl.reading_body(8, sr(value=None, q=Quality.BAD, msg="timeout", cause="network"), "")
    assert bad["value"] is None and bad["quality"] == "bad" and bad["cause"] == "network"
    assert pl.validate(bad, pl.SCHEMAS[pl.READING]) == []
    assert pl.reading_body(9, sr(value=float("inf")), "")["value"] == "inf"
    assert pl.validate(pl.reading_body(9, sr(value="B-42"), ""), pl.SCHEMAS[pl.READING]) == []
    json.loads(pl.encode(body))


def test_validate_reports_problems():
    body = pl.reading_body(7, sr(), "Pa")
    schema = pl.SCHEMAS[pl.READING]
    assert pl.validate({**body, "quality": "ok"}, schema) == [
        "$.quality: 'ok' not in ['good', 'uncertain', 'bad']"
    ]
    assert pl.validate({**body, "seq": 0}, schema) == ["$.seq: 0 < 1"]
    assert pl.validate({**body, "seq": True}, schema) == ["$.seq: bool is not integer"]
    assert "$: unexpected 'x'" in pl.validate({**body, "x": 1}, schema)
    assert "$: missing 'unit'" in pl.validate(
        {k: v for k, v in body.items() if k != "unit"}, schema
    )
    assert pl.validate({**body, "ts": "2026-01-01 00:00"}, schema)


def test_event_bodies_carry_their_seq():
    t = {
        "alarm_id": "A1",
        "tag": "s/a/r/e/x",
        "priority": "high",
        "event": "acknowledge",
        "from_state": "unacknowledged",
        "to_state": "acknowledged",
        "actor": "op.jo",
        "at_us": T0,
        "reason": "seen",
        "detail": {"comment": "ok"},
    }
    a = pl.alarm_event_body(41, t, "r")
    assert a["seq"] == 41 and a["room"] == "r" and a["ts"].endswith("Z")
    assert pl.validate(a, pl.SCHEMAS[pl.ALARM_EVENT]) == []
    d = pl.deviation_event_body(99, "deviation.close", "DEV-1", T0, "qa", "done", {"s": "closed"})
    assert d["action"] == "close" and d["seq"] == 99
    assert pl.validate(d, pl.SCHEMAS[pl.DEVIATION_EVENT]) == []


def test_status_bodies():
    will = pl.edge_status_body(False, "acme", "c1", reason="connection lost")
    assert will == {
        "schema": pl.EDGE_STATUS,
        "online": False,
        "site": "acme",
        "client_id": "c1",
        "reason": "connection lost",
    }
    assert pl.validate(will, pl.SCHEMAS[pl.EDGE_STATUS]) == []
    room = pl.status_body("room", "r1", {"state": "at_rest"}, T0)
    assert room["room"] == "r1" and room["state"] == "at_rest" and room["ts"].endswith("Z")
    with pytest.raises(ValueError, match="must not set room"):
        pl.status_body("room", "r1", {"room": "r2"}, T0)


# ----------------------------------------------------------------------------- commands


def cmd(**kw) -> bytes:
    return json.dumps(kw).encode()


def test_valid_batch_commands():
    c = pl.parse_batch_command(
        cmd(command="start", batch_id="B-1", product="P", rooms=["r1"], equipment=["press-01"]),
        T0,
    )
    assert (c.command, c.batch_id, c.product, c.rooms, c.equipment, c.at_us) == (
        "start",
        "B-1",
        "P",
        ("r1",),
        ("press-01",),
        T0,
    )
    e = pl.parse_batch_command(cmd(command="end", batch_id="B-1", at="2026-09-21T14:13:21Z"), 0)
    assert e.command == "end" and e.at_us == T0 + S


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff", "not JSON"),
        (b"[1]", "must be a JSON object"),
        (cmd(command="start", batch_id="B", product="P", rooms=["r"], x=1), "unknown field"),
        (cmd(command="stop", batch_id="B"), "'start' or 'end'"),
        (cmd(command="end"), "batch_id: batch id"),
        (cmd(command="end", batch_id=" B"), "batch_id: batch id"),
        (cmd(command="start", batch_id="B", rooms=["r"]), "start needs a product"),
        (cmd(command="start", batch_id="B", product="P"), "at least one room"),
        (cmd(command="start", batch_id="B", product="P", rooms="r"), "rooms must be a list"),
        (cmd(command="start", batch_id="B", product="P", rooms=["r", "r"]), "duplicates"),
        (cmd(command="end", batch_id="B", at="2026-01-01T00:00:00"), "no time zone"),
        (cmd(command="end", batch_id="B", at=5), "at must be"),
    ],
)
def test_invalid_batch_commands_say_why(raw, reason):
    with pytest.raises(pl.CommandError, match=reason):
        pl.parse_batch_command(raw, T0)


# ----------------------------------------------------------------------------- filter


def run_filter(f: ReadingFilter, readings, kind=""):
    out = []
    for seq, r in enumerate(readings, 1):
        if f.offer(seq, r, kind):
            f.sent(r)
            out.append(r.value)
    return out


def test_rbe_any_change_by_default_and_quality_changes_always_go_out():
    f = ReadingFilter(ReadingsPolicy())
    rs = [sr(ts=T0 + i * S, value=v) for i, v in enumerate([1.0, 1.0, 2.0, 2.0, 2.0, 1.0])]
    rs.append(sr(ts=T0 + 9 * S, value=1.0, q=Quality.UNCERTAIN))
    assert run_filter(f, rs) == [1.0, 2.0, 1.0, 1.0]
    assert f.filtered == 3


def test_rbe_deadband_per_kind_and_text_values():
    f = ReadingFilter(ReadingsPolicy(deadband={"dp": 0.5}))
    vals = [10.0, 10.3, 10.5, 10.51, 10.2, 9.9]
    assert run_filter(f, [sr(ts=T0 + i, value=v) for i, v in enumerate(vals)], "dp") == [
        10.0,
        10.51,
        9.9,
    ]
    g = ReadingFilter(ReadingsPolicy(deadband={"dp": 0.5}))
    texts = ["B-1", "B-1", "B-2"]
    assert run_filter(g, [sr(ts=T0 + i, value=v) for i, v in enumerate(texts)], "batch") == [
        "B-1",
        "B-2",
    ]


def test_mode_all_and_max_silence():
    f = ReadingFilter(ReadingsPolicy(mode="all"))
    assert run_filter(f, [sr(ts=T0 + i, value=1.0) for i in range(3)]) == [1.0] * 3
    g = ReadingFilter(ReadingsPolicy(max_silence_s=10))
    rs = [sr(ts=T0 + i * S, value=1.0) for i in range(0, 25, 5)]  # 0, 5, 10, 15, 20 s
    assert len(run_filter(g, rs)) == 3  # at 0, 10 and 20 s


def test_rate_limit_holds_the_latest_change_until_the_window_passed():
    f = ReadingFilter(ReadingsPolicy(mode="all", max_rate_per_tag_hz=1))
    rs = [sr(ts=T0 + i * S // 4, value=float(i)) for i in range(4)]  # 4 Hz for 1 s
    assert run_filter(f, rs) == [0.0]
    assert f.held == 1 and f.filtered == 2  # 1 and 2 superseded by 3
    assert f.due(T0 + S // 2) == []
    due = f.due(T0 + S)
    assert [(seq, r.value) for seq, r in due] == [(4, 3.0)] and f.held == 0
    # a reading at/after the window goes straight out
    assert f.offer(5, sr(ts=T0 + 2 * S, value=4.0))
