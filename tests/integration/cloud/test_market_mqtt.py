"""The market's FSP topics on a real Mosquitto with the per-FSP ACL, through a real controller.

FSP `fsp-a` gets the DSO's request on its own topic, and its offer published over MQTT
reaches the book; `fsp-b` cannot publish on `fsp-a`'s offer topic (the broker drops it)
nor read `fsp-a`'s orders: a subscriber of `fsp-b` on `market/fsp-a/order` (and on
`market/+/order`) gets only its own order, which the controller published after
`fsp-a`'s. An offer whose payload names another FSP than its topic is refused and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from cloud_controller.config import CloudConfig
from cloud_controller.live.types import AssetRef, SiteRef
from cloud_controller.registry import Registry
from cloud_controller.service import CloudController
from gridflex.ops.broker import MosquittoBroker, site_acl
from gridflex.ops.market_acl import fsp_acl
from protocols.assets import METER
from protocols.clock import RealClock
from protocols.market import (
    MarketIsp,
    MarketKind,
    MarketOffer,
    MarketOption,
    MarketOrder,
    MarketRequest,
    market_topic,
)

pytestmark = pytest.mark.integration

TOKENS = {"operator": "operator-0123456789abcdef", "dso": "dso-token-0123456789abcdef"}


def _offer(offer_id: str, fsp: str, price: float, delivery: datetime, now: datetime) -> bytes:
    return (
        MarketOffer(
            offer_id=offer_id,
            fsp=fsp,
            congestion_point="feeder-1",
            ts=now,
            expires=delivery + timedelta(hours=2),
            request_id="r1",
            sites=["a1"] if fsp == "fsp-a" else ["b1"],
            options=[
                MarketOption(
                    option_id="o1",
                    isps=[MarketIsp(start=delivery + timedelta(minutes=15 * k), kw=10.0) for k in range(4)],
                    price_eur_per_kwh=price,
                    min_activation_factor=0.0,
                )
            ],
        )
        .model_dump_json()
        .encode()
    )


async def _until(pred: Callable[[], Any], timeout_s: float = 15.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not await pred():
            await asyncio.sleep(0.05)


async def test_fsp_offers_over_mqtt_and_acl_isolates_fsps(tmp_path: Path) -> None:
    passwords = {u: secrets.token_urlsafe(12) for u in ("cloud", "fsp-a", "fsp-b")}
    acl = site_acl(cloud_users=("cloud",)) + fsp_acl(["fsp-a", "fsp-b"])
    broker = MosquittoBroker(users=passwords, acl=acl).start()
    for who, token in TOKENS.items():
        (tmp_path / who).write_text(token, encoding="utf-8")
    (tmp_path / "cloud.pw").write_text(passwords["cloud"], encoding="utf-8")
    cfg = CloudConfig.model_validate(
        {
            "broker": {
                "port": broker.port,
                "client_id": "mkt",
                "username": "cloud",
                "password_file": str(tmp_path / "cloud.pw"),
            },
            "store": {"path": str(tmp_path / "store.sqlite")},
            "control": {"dispatch": False, "guard_period_s": 0},
            "api": {"port": 0, "operator_token_file": str(tmp_path / "operator")},
            "market": {
                "dso_token_file": str(tmp_path / "dso"),
                "fsps": {"fsp-a": {}, "fsp-b": {}},
                "congestion_points": {"feeder-1": ["a1", "b1"]},
                "auto_clear": False,
            },
        }
    )
    ctl = CloudController(
        cfg,
        Registry(sites=tuple(SiteRef(s, i, (AssetRef(METER, "meter"),)) for i, s in enumerate(("a1", "b1")))),
        clock=RealClock(),
    )
    task = asyncio.create_task(ctl.run())
    now = datetime.now(UTC)
    delivery = datetime.fromtimestamp(now.timestamp() - now.timestamp() % 900, UTC) + timedelta(hours=3)
    fsp_a = aiomqtt.Client(
        "127.0.0.1", broker.port, identifier="fsp-a", username="fsp-a", password=passwords["fsp-a"]
    )
    fsp_b = aiomqtt.Client(
        "127.0.0.1", broker.port, identifier="fsp-b", username="fsp-b", password=passwords["fsp-b"]
    )
    try:
        async with asyncio.timeout(20):
            await ctl.session.wait_connected(20)
            while ctl.api_port is None:
                await asyncio.sleep(0.05)
        async with (
            fsp_a,
            fsp_b,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{ctl.api_port}") as http,
        ):
            await fsp_a.subscribe(market_topic("fsp-a", MarketKind.REQUEST), qos=1)
            await fsp_a.subscribe(market_topic("fsp-a", MarketKind.ORDER), qos=1)
            await fsp_b.subscribe(market_topic("fsp-a", MarketKind.ORDER), qos=1)  # another's orders: denied
            await fsp_b.subscribe("gridflex/v1/market/+/order", qos=1)
            a_msgs, b_msgs = aiter(fsp_a.messages), aiter(fsp_b.messages)

            request = {
                "request_id": "r1",
                "congestion_point": "feeder-1",
                "ts": now.isoformat(),
                "isps": [
                    {"start": (delivery + timedelta(minutes=15 * k)).isoformat(), "kw": 15.0}
                    for k in range(4)
                ],
                "value_eur_per_kwh": 100.0,
            }
            posted = await http.post(
                "/market/requests", json=request, headers={"Authorization": f"Bearer {TOKENS['dso']}"}
            )
            assert posted.status_code == 201 and posted.json()["sent_to_fsps"] == 2, posted.text
            async with asyncio.timeout(15):
                got = await anext(a_msgs)
            assert str(got.topic) == market_topic("fsp-a", MarketKind.REQUEST)
            assert MarketRequest.model_validate_json(bytes(got.payload)).request_id == "r1"

            await fsp_a.publish(
                market_topic("fsp-a", MarketKind.OFFER), _offer("a-1", "fsp-a", 10, delivery, now), qos=1
            )
            forged = _offer("forged", "fsp-a", 1, delivery, now)
            with contextlib.suppress(aiomqtt.MqttError):  # MQTT 5: the broker may answer "not authorized"
                await fsp_b.publish(market_topic("fsp-a", MarketKind.OFFER), forged, qos=1)
            mismatch = _offer("b-as-a", "fsp-a", 1, delivery, now)
            await fsp_b.publish(market_topic("fsp-b", MarketKind.OFFER), mismatch, qos=1)
            await fsp_b.publish(
                market_topic("fsp-b", MarketKind.OFFER), _offer("b-1", "fsp-b", 20, delivery, now), qos=1
            )

            async def in_book() -> bool:
                offers = await http.get("/market/offers")
                return {o["offer"]["offer_id"] for o in offers.json()} >= {"a-1", "b-1"}

            await _until(in_book)
            ids = {o["offer"]["offer_id"] for o in (await http.get("/market/offers")).json()}
            assert ids == {"a-1", "b-1"}  # the forged offer never reached the controller
            status = (await http.get("/market/status")).json()
            assert status["stats"]["mqtt_offers"] == 3 and status["stats"]["mqtt_refused"] == 1
            assert "does not match the topic's 'fsp-b'" in status["refusals"][0]["reason"]

            cleared = await http.post(
                "/market/clear", headers={"Authorization": f"Bearer {TOKENS['operator']}"}
            )
            assert [o["offer_id"] for o in cleared.json()["orders"]] == ["a-1", "b-1"]
            async with asyncio.timeout(15):
                a_order = await anext(a_msgs)
                b_first = await anext(b_msgs)
            assert str(a_order.topic) == market_topic("fsp-a", MarketKind.ORDER)
            assert MarketOrder.model_validate_json(bytes(a_order.payload)).offer_id == "a-1"
            # a's order went out before b's: had b been allowed to read it, it would have come first
            assert str(b_first.topic) == market_topic("fsp-b", MarketKind.ORDER)
            assert MarketOrder.model_validate_json(bytes(b_first.payload)).offer_id == "b-1"
    finally:
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=30)  # bounded: a hang here would hide the reason
        broker.stop()
    assert done == {task} and task.cancelled()
