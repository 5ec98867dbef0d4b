"""Notifications: JSON shape, webhook delivery against a real loopback HTTP server (HMAC,
retries on 5xx/timeouts/connection errors, no retry on 4xx), dispatcher queues, drops,
sink independence, priority filtering and drain on stop."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import ValidationError

from notify import (
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
    iso_utc,
    sign,
    verify,
)

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


# --------------------------------------------------------------------------- receiver


class Receiver:
    """A real HTTP server on 127.0.0.1:0 that answers with scripted statuses."""

    def __init__(self, statuses: list[int] | None = None, delays: list[float] | None = None):
        self.statuses = list(statuses or [])
        self.delays = list(delays or [])
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer._lock:
                    delay = outer.delays.pop(0) if outer.delays else 0.0
                    status = outer.statuses.pop(0) if outer.statuses else 200
                time.sleep(delay)
                with outer._lock:
                    outer.requests.append((self.path, dict(self.headers.items()), body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fast_webhook(url: str, **kw: object) -> WebhookNotifier:
    args: dict = {"timeout_s": 1.0, "retries": 3, "backoff_s": 0.01}
    args.update(kw)
    return WebhookNotifier(url, **args)


async def run_until_idle(d: Dispatcher, timeout: float = 5.0) -> None:
    """Run the dispatcher until every queue is empty and nothing is in flight."""
    stop = asyncio.Event()
    task = asyncio.create_task(d.run(stop))
    deadline = time.monotonic() + timeout
    while any(s["queued"] for s in d.status()["sinks"].values()):
        assert time.monotonic() < deadline, d.status()
        await asyncio.sleep(0.005)
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
    assert iso_utc(0) == "1970-01-01T00:00:00.000000Z"


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


async def test_webhook_posts_exact_json_with_verifiable_hmac(receiver: Receiver) -> None:
    wh = fast_webhook(receiver.url, secret=SECRET, headers={"X-Plant": "P1"})
    n = note()
    await wh.send(n)
    await wh.aclose()
    [(path, headers, body)] = receiver.requests
    assert path == "/hook"
    assert body == n.to_json().encode("utf-8")
    assert json.loads(body) == n.to_dict()
    sig = headers[SIGNATURE_HEADER]
    assert sig.startswith("sha256=") and len(sig) == len("sha256=") + 64
    assert verify(body, SECRET, sig)
    assert not verify(body, "wrong", sig)
    assert not verify(body + b" ", SECRET, sig)
    assert not verify(body, SECRET, None)
    assert headers[KEY_HEADER] == n.key
    assert headers["X-Plant"] == "P1"
    assert headers["Content-Type"].startswith("application/json")


async def test_webhook_without_secret_sends_no_signature(receiver: Receiver) -> None:
    wh = fast_webhook(receiver.url)
    await wh.send(note())
    await wh.aclose()
    [(_, headers, _)] = receiver.requests
    assert SIGNATURE_HEADER not in headers


async def test_5xx_then_200_is_retried_and_delivered_once() -> None:
    with Receiver(statuses=[503, 500, 200]) as r:
        wh = fast_webhook(r.url, secret=SECRET)
        d = Dispatcher([wh])
        d.submit(note())
        await run_until_idle(d)
    assert len(r.requests) == 3
    assert len({body for _, _, body in r.requests}) == 1  # same body, same signature
    st = d.status()["sinks"][wh.name]
    assert (st["sent"], st["failed"], st["last_error"]) == (1, 0, None)


async def test_4xx_is_not_retried_and_counts_failed() -> None:
    with Receiver(statuses=[400, 200]) as r:
        wh = fast_webhook(r.url)
        d = Dispatcher([wh], clock=lambda: 42)
        d.submit(note())
        await run_until_idle(d)
    assert len(r.requests) == 1
    st = d.status()["sinks"][wh.name]
    assert (st["sent"], st["failed"]) == (0, 1)
    assert "HTTP 400" in st["last_error"] and "not retried" in st["last_error"]
    assert st["last_error_us"] == 42


async def test_429_is_retried() -> None:
    with Receiver(statuses=[429, 200]) as r:
        wh = fast_webhook(r.url)
        await wh.send(note())
        await wh.aclose()
    assert len(r.requests) == 2


async def test_timeout_is_retried() -> None:
    with Receiver(delays=[0.3]) as r:
        wh = fast_webhook(r.url, timeout_s=0.1, retries=2)
        await wh.send(note())
        await wh.aclose()
        await asyncio.sleep(0.3)  # let the stalled first request finish on the server
    assert len(r.requests) == 2  # the receiver may see a retried notification twice: key dedupes


async def test_unreachable_port_fails_after_retries() -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    wh = fast_webhook(url, retries=2)
    with pytest.raises(DeliveryError, match="after 3 attempts"):
        await wh.send(note())
    d = Dispatcher([wh], clock=lambda: 7)
    d.submit(note())
    await run_until_idle(d)
    st = d.status()["sinks"][wh.name]
    assert (st["sent"], st["failed"], st["last_error_us"]) == (0, 1, 7)
    assert "ConnectError" in st["last_error"]


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
    for _ in range(200):
        if len(rec.got) == 20 and d.status()["sinks"]["failing"]["failed"] == 20:
            break
        await asyncio.sleep(0.005)
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


async def test_webhook_client_is_closed_at_stop(receiver: Receiver) -> None:
    wh = fast_webhook(receiver.url)
    d = Dispatcher([wh])
    d.submit(note())
    await run_until_idle(d)
    assert wh._client is None


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


async def test_priority_filter_passes_only_urgent_enough(receiver: Receiver) -> None:
    cfg = NotifyConfig(
        webhooks=[WebhookConfig(url=receiver.url, min_priority="high", backoff_s=0.01)]
    )
    sinks = build_notifiers(cfg)
    d = Dispatcher(sinks)
    for p in ("low", "medium", "high", "critical"):
        d.submit(note(priority=p, record_id=p))
    await run_until_idle(d)
    got = [json.loads(body)["priority"] for _, _, body in receiver.requests]
    assert sorted(got) == ["critical", "high"]
    st = d.status()["sinks"]
    assert st["log"]["sent"] == 4 and st["log"]["filtered"] == 0
    wh = next(n for n in st if n.startswith("webhook:"))
    assert (st[wh]["sent"], st[wh]["filtered"]) == (2, 2)


async def test_priority_filter_used_directly_skips_low() -> None:
    rec = Recording()
    f = PriorityFilter(rec, "critical")
    await f.send(note(priority="high"))
    await f.send(note(priority="critical"))
    assert [n.priority for n in rec.got] == ["critical"]
    assert f.name == "rec"
    with pytest.raises(ValueError):
        PriorityFilter(rec, "urgent")


async def test_build_notifiers_signs_with_secret_from_env(receiver: Receiver) -> None:
    cfg = NotifyConfig(
        log=False, webhooks=[WebhookConfig(url=receiver.url, secret_env="HOOK_SECRET")]
    )
    [sink] = build_notifiers(cfg, environ={"HOOK_SECRET": SECRET})
    n = note()
    await sink.send(n)
    await sink.aclose()  # type: ignore[attr-defined]
    [(_, headers, body)] = receiver.requests
    assert verify(body, SECRET, headers[SIGNATURE_HEADER])


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
