"""The VEN's callback server on a real loopback socket: token first, then size and shape; only EVENT/PROGRAM wake.

Limit 1,000 bytes: a 2,000-byte body (right token) is 413; a wrong token on the same
body is 401 before the body is read. Also the pure bodies of registration and
subscription, the config's loopback rule for the callback host, and the stop that deletes
the subscriptions while the runner keeps cancelling (a mock VTN transport, DELETE 0.6 s).
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from pydantic import ValidationError

from cloud_controller.openadr.ven.callback import PATH, CallbackServer
from cloud_controller.openadr.ven.clients import DrApiClient, VtnClient
from cloud_controller.openadr.ven.config import CallbackConfig, VenConfig, VenCredentials
from cloud_controller.openadr.ven.registration import differs, resource_body, ven_body
from cloud_controller.openadr.ven.service import STOP_S, VenService
from cloud_controller.openadr.ven.subscription import Subscriptions, new_token, subscription_body
from gridflex.ops.runner import cancel_until_done
from protocols.clock import RealClock


async def test_callback_refuses_wrong_tokens_and_bad_bodies_and_wakes_only_on_events() -> None:
    wake = asyncio.Event()
    server = CallbackServer(
        CallbackConfig(port=0, max_body_bytes=1_000), "right-token", wake, clock=RealClock()
    )
    url = await server.start()
    try:
        assert url.startswith("http://127.0.0.1:") and url.endswith(PATH)
        ok = {"Authorization": "Bearer right-token"}
        async with httpx.AsyncClient(timeout=10) as http:
            big = {"objectType": "EVENT", "pad": "x" * 2_000}
            answers = [
                (
                    await http.post(
                        url, json={"objectType": "EVENT"}, headers={"Authorization": "Bearer wrong"}
                    )
                ),
                (
                    await http.post(
                        url, json={"objectType": "EVENT"}, headers={"Authorization": "right-token"}
                    )
                ),
                (await http.post(url, json=big, headers={"Authorization": "Bearer wrong"})),
                (await http.post(url, json=big, headers=ok)),
                (await http.post(url, content=b"not json", headers=ok)),
                (await http.post(url, json={"objectType": "REPORT"}, headers=ok)),
            ]
            assert [a.status_code for a in answers] == [401, 401, 401, 413, 400, 200]
            assert answers[0].headers["WWW-Authenticate"].startswith("Bearer")
            assert not wake.is_set()
            event = await http.post(url, json={"objectType": "EVENT", "operation": "POST"}, headers=ok)
            assert event.status_code == 200
            assert wake.is_set()
    finally:
        await server.stop()
    s = server.stats
    assert (s.refused, s.too_large, s.bad_body, s.ignored, s.accepted) == (3, 1, 1, 1, 1)
    assert s.last_accepted_at is not None
    async with httpx.AsyncClient(timeout=2) as http:
        with pytest.raises(httpx.ConnectError):  # stopped: the port is closed
            await http.post(url, json={})


def test_callback_listens_on_loopback_only() -> None:
    with pytest.raises(ValidationError, match="loopback only"):
        CallbackConfig(host="0.0.0.0")
    with pytest.raises(ValidationError, match="loopback host only"):
        CallbackConfig(public_url="http://vtn-facing.example/cb")
    assert CallbackConfig(public_url="https://ven.example/cb").public_url == "https://ven.example/cb"


def test_bodies_of_the_ven_its_resources_and_its_subscription() -> None:
    cfg = VenConfig.model_validate(
        {
            "vtn": {"url": "https://vtn.example/openadr3", "ven_name": "agg"},
            "dr_api": {"operator_token_file": "op"},
            "programs": [{"program": "p", "dr_program": "peak"}],
            "registration": {
                "targets": ["station-1"],
                "resources": [
                    {"resource_name": "site-a", "attributes": [{"type": "MAX_KW", "values": [20]}]}
                ],
            },
        }
    )
    assert ven_body(cfg) == {"venName": "agg", "targets": ["station-1"]}
    site = resource_body(cfg.registration.resources[0], "ven-1")
    assert site == {
        "resourceName": "site-a",
        "venID": "ven-1",
        "attributes": [{"type": "MAX_KW", "values": [20]}],
    }
    stored = {"id": "r1", "createdDateTime": "2030-01-01T00:00:00Z", "targets": [], **site}
    assert not differs(stored, site)  # server fields and an empty list are no difference
    assert differs({**stored, "targets": ["station-2"]}, site)
    assert differs({**stored, "attributes": None}, site)
    with pytest.raises(ValidationError, match="listed twice"):
        VenConfig.model_validate(
            {
                **cfg.model_dump(mode="json", exclude={"registration"}),
                "registration": {"resources": [{"resource_name": "x"}, {"resource_name": "x"}]},
            }
        )
    token = new_token()
    assert len(token) >= 43 and token != new_token()
    sub = subscription_body("agg", "prog-1", "http://127.0.0.1:8091/openadr3/notifications", token)
    assert sub["programID"] == "prog-1" and sub["clientName"] == "agg"
    assert sub["objectOperations"] == [
        {
            "objects": ["EVENT"],
            "operations": ["POST", "PUT", "DELETE"],
            "callbackUrl": "http://127.0.0.1:8091/openadr3/notifications",
            "bearerToken": token,
        }
    ]


async def test_stop_deletes_the_subscriptions_while_the_runner_keeps_cancelling() -> None:
    """The runner re-cancels every 0.2 s; a DELETE taking 0.6 s still completes (bounded by STOP_S)."""
    deleted: list[str] = []

    async def vtn(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        if request.method == "DELETE":
            await asyncio.sleep(0.6)
            deleted.append(request.url.path)
            return httpx.Response(200, json={"id": request.url.path.rsplit("/", 1)[1]})
        return httpx.Response(404, json={})

    cfg = VenConfig.model_validate(
        {
            "vtn": {"url": "https://vtn.example/openadr3", "ven_name": "agg"},
            "dr_api": {"operator_token_file": "op"},
            "programs": [{"program": "p", "dr_program": "peak"}],
        }
    )
    clock = RealClock()
    async with httpx.AsyncClient(transport=httpx.MockTransport(vtn)) as http:
        creds = VenCredentials(client_id="ven-1", secret="s" * 16)
        client = VtnClient(http, cfg.vtn.url, creds, clock=clock)
        service = VenService(cfg, client, DrApiClient(http, "http://127.0.0.1:9", "op"), clock=clock)
        service.subscriptions = Subscriptions(client, "agg", "http://127.0.0.1:1/cb", "tok", ids={"p1": "s1"})

        async def serving() -> None:
            try:
                await asyncio.sleep(3600)
            finally:
                await service.stop()

        task = asyncio.create_task(serving())
        await asyncio.sleep(0.05)
        started = time.monotonic()
        assert await cancel_until_done(task, bound_s=10)
        took_s = time.monotonic() - started
    assert deleted == ["/openadr3/subscriptions/s1"]
    assert (service.subscriptions.deleted, service.subscriptions.ids) == (1, {})
    assert 0.6 <= took_s < STOP_S
