"""VTN subscription notifications to a real loopback HTTP receiver (stdlib `http.server` in a thread).

The VTN is the controller's real app (ASGI in-process, OAuth tokens over its own routes);
the callback receiver is a real HTTP server on 127.0.0.1 that records each POST and answers
the status codes the test scripts (500 then 200: one retry). Backoff 0.02 s, 3 attempts.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from cloud_controller.api import create_app
from cloud_controller.config import CloudConfig
from cloud_controller.openadr.notifier import callback_refusal, notifications_for
from cloud_controller.registry import Registry
from cloud_controller.service import CloudController
from protocols.clock import RealClock

pytestmark = pytest.mark.integration


class Receiver:
    """A loopback HTTP server: records (headers, JSON body) of each POST, answers from `codes` (then 200)."""

    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], Any]] = []
        self.codes: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.got.append((dict(self.headers), body))
                self.send_response(outer.codes.pop(0) if outer.codes else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/cb"
        self.thread = threading.Thread(
            target=lambda: self.server.serve_forever(0.05), name="callback", daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _controller(tmp: Path, hosts: list[str]) -> CloudController:
    cfg = CloudConfig.model_validate(
        {
            "store": {"path": str(tmp / "s.sqlite")},
            "control": {"dispatch": False},
            "openadr": {
                "enabled": True,
                "credentials_file": str(tmp / "oa3.yaml"),
                "callback_hosts": hosts,
                "notify_backoff_s": 0.02,
                "notify_attempts": 3,
            },
        }
    )
    return CloudController(cfg, Registry(sites=()), clock=RealClock())


def _token(http: TestClient, tmp: Path, role: str) -> dict[str, str]:
    c = next(c for c in yaml.safe_load((tmp / "oa3.yaml").read_text())["clients"] if c["role"] == role)
    basic = base64.b64encode(f"{c['client_id']}:{c['secret']}".encode()).decode()
    r = http.post(
        "/openadr3/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _subscription(
    url: str, *, program_id: str | None = None, ops: tuple[str, ...] = ("POST", "PUT")
) -> dict[str, Any]:
    sub: dict[str, Any] = {
        "clientName": "ven-under-test",
        "objectOperations": [
            {
                "objects": ["EVENT"],
                "operations": list(ops),
                "callbackUrl": url,
                "bearerToken": "cb-token-0123456789",
            }
        ],
    }
    if program_id:
        sub["programID"] = program_id
    return sub


def _wait(cond: Any, what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _close(ctl: CloudController) -> None:
    if ctl.openadr is not None:
        ctl.openadr.close()
    ctl.store.close()
    ctl.dr.close()
    ctl.market.close()


def test_event_change_reaches_the_subscribers_callback_after_one_retry(
    tmp_path: Path, receiver: Receiver
) -> None:
    ctl = _controller(tmp_path, ["127.0.0.1"])
    try:
        with TestClient(create_app(ctl)) as http:
            bl, ven = _token(http, tmp_path, "bl"), _token(http, tmp_path, "ven")
            p1 = http.post("/openadr3/programs", json={"programName": "p1"}, headers=bl).json()["id"]
            p2 = http.post("/openadr3/programs", json={"programName": "p2"}, headers=bl).json()["id"]
            assert (
                http.post(
                    "/openadr3/subscriptions", json=_subscription(receiver.url), headers=ven
                ).status_code
                == 201
            )
            only_p2 = _subscription(receiver.url.replace("/cb", "/p2"), program_id=p2)
            assert http.post("/openadr3/subscriptions", json=only_p2, headers=ven).status_code == 201
            receiver.codes = [500]  # the first delivery fails once
            event = {
                "programID": p1,
                "eventName": "e1",
                "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]}],
            }
            created = http.post("/openadr3/events", json=event, headers=bl).json()
            _wait(lambda: ctl.openadr.notifier.sent == 1, "the first notification")  # type: ignore[union-attr]
            http.put(f"/openadr3/events/{created['id']}", json={**event, "eventName": "e1b"}, headers=bl)
            _wait(lambda: ctl.openadr.notifier.sent == 2, "the update's notification")  # type: ignore[union-attr]
            http.delete(f"/openadr3/events/{created['id']}", headers=bl)  # DELETE not subscribed: nothing
            status = http.get("/openadr3/status", headers=bl).json()["notifications"]
    finally:
        _close(ctl)
    assert len(receiver.got) == 3  # 500, then the retry, then the PUT
    (h1, b1), (_, b2), (_, b3) = receiver.got
    assert h1["Authorization"] == "Bearer cb-token-0123456789"
    assert b1 == b2  # the retry is the same notification
    assert (b1["objectType"], b1["operation"], b1["object"]["id"]) == ("EVENT", "POST", created["id"])
    assert (b3["operation"], b3["object"]["eventName"]) == ("PUT", "e1b")
    assert (status["sent"], status["retries"], status["failed"], status["blocked"]) == (2, 1, 0, 0)


def test_callback_outside_the_allowlist_is_blocked_and_a_dead_one_given_up(
    tmp_path: Path, receiver: Receiver
) -> None:
    ctl = _controller(tmp_path, [f"127.0.0.1:{receiver.port}"])
    try:
        with TestClient(create_app(ctl)) as http:
            bl, ven = _token(http, tmp_path, "bl"), _token(http, tmp_path, "ven")
            p1 = http.post("/openadr3/programs", json={"programName": "p1"}, headers=bl).json()["id"]
            for url in (
                receiver.url.replace("127.0.0.1", "localhost"),
                "http://169.254.169.254/latest",
                receiver.url,
            ):
                assert (
                    http.post("/openadr3/subscriptions", json=_subscription(url), headers=ven).status_code
                    == 201
                )
            receiver.codes = [503, 503, 503]  # every attempt fails
            event = {
                "programID": p1,
                "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]}],
            }
            http.post("/openadr3/events", json=event, headers=bl)
            _wait(lambda: ctl.openadr.notifier.failed == 1, "giving up")  # type: ignore[union-attr]
            status = http.get("/openadr3/status", headers=bl).json()["notifications"]
    finally:
        _close(ctl)
    assert len(receiver.got) == 3  # three attempts at the allowed one; the other two never left
    assert (status["blocked"], status["sent"], status["failed"], status["retries"]) == (2, 0, 1, 2)
    assert "HTTP 503" in status["last_error"]


def test_matching_and_the_allowlist_rules() -> None:
    subs = [
        {
            "id": "s1",
            "objectOperations": [
                {"objects": ["EVENT", "PROGRAM"], "operations": ["POST"], "callbackUrl": "u1"}
            ],
        },
        {
            "id": "s2",
            "programID": "p2",
            "objectOperations": [{"objects": ["EVENT"], "operations": ["POST"], "callbackUrl": "u2"}],
        },
        {
            "id": "s3",
            "objectOperations": [{"objects": ["REPORT"], "operations": ["POST"], "callbackUrl": "u3"}],
        },
    ]
    assert [
        n.subscription_id for n in notifications_for(subs, "events", "POST", {"id": "e", "programID": "p1"})
    ] == ["s1"]
    assert [
        n.subscription_id for n in notifications_for(subs, "events", "POST", {"id": "e", "programID": "p2"})
    ] == ["s1", "s2"]
    assert [n.subscription_id for n in notifications_for(subs, "programs", "POST", {"id": "p2"})] == ["s1"]
    assert notifications_for(subs, "events", "PUT", {"id": "e", "programID": "p1"}) == []
    assert callback_refusal("http://127.0.0.1:8000/x", ["127.0.0.1"]) is None
    assert callback_refusal("http://127.0.0.1:8000/x", ["127.0.0.1:8000"]) is None
    assert "not in openadr.callback_hosts" in str(
        callback_refusal("http://127.0.0.1:8001/x", ["127.0.0.1:8000"])
    )
    assert "not an http(s) URL" in str(callback_refusal("file:///etc/passwd", ["127.0.0.1"]))
    assert "10.0.0.1:443" in str(callback_refusal("https://10.0.0.1/x", []))
