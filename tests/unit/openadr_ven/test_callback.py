"""The VEN's callback server on a real loopback socket: token first, then size and shape; only EVENT/PROGRAM wake.

Limit 1,000 bytes: a 2,000-byte body (right token) is 413; a wrong token on the same
body is 401 before the body is read. Also the pure bodies of registration and
subscription, and the config's loopback rule for the callback host.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from pydantic import ValidationError

from cloud_controller.openadr.ven.callback import PATH, CallbackServer
from cloud_controller.openadr.ven.config import CallbackConfig, VenConfig
from cloud_controller.openadr.ven.registration import differs, resource_body, ven_body
from cloud_controller.openadr.ven.subscription import new_token, subscription_body
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
