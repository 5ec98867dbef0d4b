"""Notifications: JSON shape, webhook request headers (HMAC), dispatcher queues, drops,
sink independence, priority filtering and drain on stop, without a network. Delivery to a
real HTTP receiver (retries on 5xx/timeouts/connection errors, none on 4xx) is tested in
tests/system/test_notify_webhook.py."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from pydantic import ValidationError

from gmp_edge.notify import (
    KEY_HEADER,
    SIGNATURE_HEADER,
    DeliveryError,
    Dispatcher,
    LogNotifier,
    Notification,
    NotifyConfig,
    PriorityFilter,
    WebhookConfig,
    WebhookNotifier,
    build_notifiers,
    deviation_priority,
    sign,
    verify,
)
from tests.waiting import until

T0 = 1_790_000_000_123_456  # 2026-09-21T14:13:20.123456Z
SECRET = "s3cret-for-tests"


def note(priority: str = "high", record_id: str = "AL-1", **kw: object) -> Notification:
    args: dict = {
        "kind": "alarm.raised",
        "priority": priority,
        "title": "R201 particles 0.5 µm action high",
        "text": "4000 > 3520 counts/m³",
        "record_type": "alarm",
        "record_id": record_id,
        "ts_us": T0,
        "data": {"tag": "site/compression/R201/p_0_5", "value": 4000.0, "limit": 3520.0},
    }
    args.update(kw)
    return Notification(**args)


def fast_webhook(url: str, **kw: object) -> WebhookNotifier:
    args: dict = {"timeout_s": 1.0, "retries": 3, "backoff_s": 0.01}
    args.update(kw)
    return WebhookNotifier(url, **args)


async def run_until_idle(d: Dispatcher) -> None:
    """Run the dispatcher until every queue is empty, then stop it (the drain delivers what
    is still in flight)."""
    stop = asyncio.Event()
    task = asyncio.create_task(d.run(stop))
    try:
        await until(
            lambda: not any(s["queued"] for s in d.status()["sinks"].values()),
            what="every queue empty",
        )
    finally:
        stop.set()
        report = await task
    assert report.undelivered == ()


class Recording:
    """Sink that records what it got."""

    def __init__(self, name: str = "rec", delay_s: float = 0.0) -> None:
        self.name = name
        self.delay_s = delay_s
        self.got: list[Notification] = []

    async def send(self, n: Notification) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        self.got.append(n)


class Failing:
    """Sink that always fails."""

    name = "failing"

    async def send(self, n: Notification) -> None:
        raise DeliveryError("receiver says no")


class Hanging:
    """Sink that never returns (a receiver that accepts the connection and then stalls)."""

    name = "hanging"

    async def send(self, n: Notification) -> None:
        await asyncio.Event().wait()


# --------------------------------------------------------------------------- model


def test_to_json_is_exact_sorted_and_iso_utc() -> None:
    n = note()
    assert json.loads(n.to_json()) == {
        "key": f"alarm/AL-1/alarm.raised/{T0}",
        "kind": "alarm.raised",
        "priority": "high",
        "title": "R201 particles 0.5 µm action high",
        "text": "4000 > 3520 counts/m³",
        "record_type": "alarm",
        "record_id": "AL-1",
        "ts": "2026-09-21T14:13:20.123456Z",
        "ts_us": T0,
        "data": {"tag": "site/compression/R201/p_0_5", "value": 4000.0, "limit": 3520.0},
    }
    assert n.to_json() == note().to_json()  # deterministic, so signatures are reproducible
    assert list(json.loads(n.to_json())) == sorted(json.loads(n.to_json()))


@pytest.mark.parametrize(
    ("kw", "err"),
    [
        ({"priority": "urgent"}, ValueError),
        ({"kind": ""}, ValueError),
        ({"ts_us": 1.5}, TypeError),
        ({"data": {"x": object()}}, ValueError),
        ({"data": {"x": float("nan")}}, ValueError),
    ],
)
def test_invalid_notification_is_refused_where_it_is_built(kw: dict, err: type) -> None:
    with pytest.raises(err):
        note(**kw)


def test_deviation_classes_map_onto_priorities() -> None:
    assert deviation_priority("critical") == "critical"
    assert deviation_priority("major") == "high"
    assert deviation_priority("minor") == "medium"
    assert deviation_priority("unheard-of") == "critical"


# --------------------------------------------------------------------------- webhook


def test_request_headers_carry_the_key_the_signature_and_configured_headers() -> None:
    n = note()
    body = n.to_json().encode("utf-8")
    signed = fast_webhook("https://hooks.example/x", secret=SECRET, headers={"X-Plant": "P1"})
    h = signed.request_headers(n, body)
    assert h[KEY_HEADER] == n.key and h["X-Plant"] == "P1"
    assert h["Content-Type"].startswith("application/json")
    assert verify(body, SECRET, h[SIGNATURE_HEADER])
    # ours override configured ones of the same name
    clash = fast_webhook("https://hooks.example/x", headers={KEY_HEADER: "mine"})
    assert clash.request_headers(n, body)[KEY_HEADER] == n.key
    assert SIGNATURE_HEADER not in clash.request_headers(n, body)


def test_webhook_name_hides_credentials_and_query() -> None:
    wh = WebhookNotifier("https://user:pw@hooks.example:8443/x/y?token=abc")
    assert wh.name == "webhook:https://hooks.example:8443/x/y"
    with pytest.raises(ValueError):
        WebhookNotifier("ftp://hooks.example/")


def test_sign_matches_hmac_sha256() -> None:
    import hashlib
    import hmac

    body = b'{"a":1}'
    assert (
        sign(body, SECRET)
        == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    )
    assert sign(body, SECRET.encode()) == sign(body, SECRET)


# --------------------------------------------------------------------------- dispatcher


async def test_full_queue_counts_drops_logs_error_and_calls_on_drop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dropped: list[tuple[str, str, str]] = []
    rec = Recording()
    d = Dispatcher(
        [rec], queue_size=2, on_drop=lambda n, s, why: dropped.append((n.record_id, s, why))
    )
    with caplog.at_level(logging.ERROR, logger="gmp_edge.notify"):
        for i in range(5):
            d.submit(note(record_id=f"AL-{i}"))  # not running: nothing is consumed
    assert d.dropped == 3
    assert dropped == [(f"AL-{i}", "rec", "queue_full") for i in (2, 3, 4)]
    assert sum("NOT delivered" in r.getMessage() for r in caplog.records) == 3
    assert all(r.levelno == logging.ERROR for r in caplog.records)
    await run_until_idle(d)
    assert [n.record_id for n in rec.got] == ["AL-0", "AL-1"]
    assert d.status()["dropped"] == 3


def test_failing_on_drop_callback_does_not_break_submit() -> None:
    def boom(n: Notification, sink: str, reason: str) -> None:
        raise RuntimeError("audit down")

    d = Dispatcher([Recording()], queue_size=1, on_drop=boom)
    d.submit(note())
    d.submit(note())  # must not raise into the alarm engine
    assert d.dropped == 1


async def test_one_failing_or_hanging_sink_does_not_block_another() -> None:
    rec, hang, fail = Recording(), Hanging(), Failing()
    d = Dispatcher([fail, hang, rec], drain_timeout_s=0.1)
    stop = asyncio.Event()
    task = asyncio.create_task(d.run(stop))
    for i in range(20):
        d.submit(note(record_id=f"AL-{i}"))
    try:
        await until(
            lambda: len(rec.got) == 20 and d.status()["sinks"]["failing"]["failed"] == 20,
            what="the recording sink has all 20 and the failing one failed 20",
        )
    except BaseException:
        stop.set()
        await task
        raise
    st = d.status()["sinks"]
    assert st["rec"]["sent"] == 20
    assert st["failing"]["failed"] == 20
    assert st["failing"]["last_error"] == "DeliveryError: receiver says no"
    assert st["hanging"]["sent"] == 0 and st["hanging"]["queued"] == 20
    stop.set()
    report = await task
    assert report.timed_out
    assert [s for s, _ in report.undelivered] == ["hanging"] * 20
    assert [n.record_id for _, n in report.undelivered] == [f"AL-{i}" for i in range(20)]
    assert d.status()["last_drain"]["undelivered"][0] == {
        "sink": "hanging",
        "key": note(record_id="AL-0").key,
    }


async def test_drain_on_stop_delivers_what_is_queued_then_refuses_new() -> None:
    rec = Recording(delay_s=0.005)
    dropped: list[str] = []
    d = Dispatcher([rec], drain_timeout_s=5, on_drop=lambda n, s, why: dropped.append(why))
    for i in range(10):
        d.submit(note(record_id=f"AL-{i}"))
    stop = asyncio.Event()
    stop.set()  # stop at once: everything queued must still go out
    report = await d.run(stop)
    assert not report.timed_out and report.undelivered == ()
    assert len(rec.got) == 10
    d.submit(note())  # after stop: counted and reported, not silently lost
    assert dropped == ["closed"] and d.dropped == 1


def test_duplicate_sink_names_are_made_unique() -> None:
    d = Dispatcher([Recording("x"), Recording("x"), Recording("y")])
    assert d.sink_names == ["x", "x#2", "y"]
    assert set(d.status()["sinks"]) == {"x", "x#2", "y"}


async def test_log_notifier_writes_one_structured_line(caplog: pytest.LogCaptureFixture) -> None:
    n = note(priority="critical")
    with caplog.at_level(logging.INFO, logger="gmp_edge.notify"):
        await LogNotifier().send(n)
    [r] = caplog.records
    assert r.name == "gmp_edge.notify" and r.levelno == logging.ERROR
    assert r.getMessage() == "notification " + n.to_json()
    assert r.notification == n.to_dict()  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- priority + config


async def test_priority_filter_used_directly_skips_low() -> None:
    rec = Recording()
    f = PriorityFilter(rec, "critical")
    await f.send(note(priority="high"))
    await f.send(note(priority="critical"))
    assert [n.priority for n in rec.got] == ["critical"]
    assert f.name == "rec"
    with pytest.raises(ValueError):
        PriorityFilter(rec, "urgent")


def test_build_notifiers_refuses_missing_secret() -> None:
    cfg = NotifyConfig(webhooks=[WebhookConfig(url="https://h.example/x", secret_env="NOPE_X")])
    with pytest.raises(ValueError, match="NOPE_X"):
        build_notifiers(cfg, environ={})


@pytest.mark.parametrize(
    "bad",
    [
        {"url": "ftp://h.example/x"},
        {"url": "https://"},
        {"url": "h.example/x"},
        {"url": "https://h.example", "min_priority": "urgent"},
        {"url": "https://h.example", "retries": -1},
        {"url": "https://h.example", "timeout_s": 0},
        {"url": "https://h.example", "secret_env": "not a name!"},
        {"url": "https://h.example", "secret": "inline"},  # extra=forbid: secrets stay in env
    ],
)
def test_webhook_config_validation(bad: dict) -> None:
    with pytest.raises(ValidationError):
        WebhookConfig(**bad)


def test_notify_config_defaults_and_extra_forbidden() -> None:
    cfg = NotifyConfig()
    assert cfg.log and cfg.webhooks == [] and cfg.queue_size == 1000
    assert [s.name for s in build_notifiers(cfg)] == ["log"]
    with pytest.raises(ValidationError):
        NotifyConfig(mail=True)  # type: ignore[call-arg]
