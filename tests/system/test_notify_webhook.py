"""Webhook delivery against a real HTTP receiver on loopback: exact JSON with a verifiable
HMAC, retries on 5xx, 429, timeouts and connection errors, none on 4xx, priority filtering
and the client closed at stop. (The notification model, headers and the dispatcher without a
network: tests/unit/test_notify.py.)"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gmp_edge.clock import ManualClock
from gmp_edge.notify import (
    KEY_HEADER,
    SIGNATURE_HEADER,
    DeliveryError,
    Dispatcher,
    NotifyConfig,
    WebhookConfig,
    build_notifiers,
    verify,
)
from tests.unit.test_notify import SECRET, fast_webhook, note, run_until_idle

pytestmark = pytest.mark.system


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
        # server_close() then joins every request thread: a stalled request has finished
        # (and been recorded) when the receiver is closed, and no thread is left behind
        self.server.daemon_threads = False
        self.server.block_on_close = True
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
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        d = Dispatcher([wh], clock=ManualClock(42))
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
    # the first answer comes 3 s late, well past the 1 s timeout; the retry is answered at once
    with Receiver(delays=[3.0]) as r:
        wh = fast_webhook(r.url, timeout_s=1.0, retries=2)
        await wh.send(note())
        await wh.aclose()
    # closing the receiver waited for the stalled first request to finish on the server
    assert len(r.requests) == 2  # the receiver may see a retried notification twice: key dedupes


async def test_unreachable_port_fails_after_retries() -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    wh = fast_webhook(url, retries=2)
    with pytest.raises(DeliveryError, match="after 3 attempts"):
        await wh.send(note())
    d = Dispatcher([wh], clock=ManualClock(7))
    d.submit(note())
    await run_until_idle(d)
    st = d.status()["sinks"][wh.name]
    assert (st["sent"], st["failed"], st["last_error_us"]) == (0, 1, 7)
    assert "ConnectError" in st["last_error"]


async def test_webhook_client_is_closed_at_stop(receiver: Receiver) -> None:
    wh = fast_webhook(receiver.url)
    d = Dispatcher([wh])
    d.submit(note())
    await run_until_idle(d)
    assert wh._client is None


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
