"""The market shell's parts: topics and wire models, the FSP ACL, clearing at gate closure on the Clock.

The automatic clearing runs on a manual SimClock: with the gate 2 h before a 17:00 delivery,
nothing is cleared at 14:59; stepping past 15:00 clears the request (10 kW at 10 €/kWh +
5 kW at 20 €/kWh for one hour = 200 €), and the orders it could not publish (no broker
here) are counted, not lost.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from cloud_controller.market.config import MarketConfig
from cloud_controller.market.shell import MarketShell
from gridflex.ops.market_acl import fsp_acl
from protocols.clock import SimClock
from protocols.errors import ContractError
from protocols.market import (
    MarketIsp,
    MarketKind,
    MarketOffer,
    MarketOption,
    MarketRequest,
    decode_offer,
    market_topic,
    market_wildcard,
    parse_market,
)
from protocols.mqtt import MqttConfig, MqttSession

NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
DELIVERY = datetime(2030, 1, 15, 17, 0, tzinfo=UTC)


def _isps(kw: float) -> list[MarketIsp]:
    return [MarketIsp(start=DELIVERY + timedelta(minutes=15 * k), kw=kw) for k in range(4)]


def _offer(offer_id: str, fsp: str, price: float) -> MarketOffer:
    return MarketOffer(
        offer_id=offer_id,
        fsp=fsp,
        congestion_point="feeder-1",
        ts=NOW,
        expires=DELIVERY + timedelta(hours=1),
        options=[
            MarketOption(option_id="o1", isps=_isps(10.0), price_eur_per_kwh=price, min_activation_factor=0.0)
        ],
    )


def test_topics_are_per_fsp_and_refuse_wildcards() -> None:
    assert market_topic("fsp-a", "offer") == "gridflex/v1/market/fsp-a/offer"
    assert market_wildcard(MarketKind.OFFER) == "gridflex/v1/market/+/offer"
    assert parse_market("gridflex/v1/market/fsp-a/order") == ("fsp-a", MarketKind.ORDER)
    for bad in ("fsp/a", "+", "#", "FSP"):
        with pytest.raises(ValueError, match="invalid FSP id"):
            market_topic(bad, "offer")
    with pytest.raises(ValueError, match="unknown market topic kind"):
        parse_market("gridflex/v1/market/fsp-a/cmd")


def test_decode_offer_checks_topic_and_payload() -> None:
    payload = _offer("x", "fsp-a", 10).model_dump_json().encode()
    assert decode_offer(market_topic("fsp-a", "offer"), payload).offer_id == "x"
    with pytest.raises(ContractError, match="does not match the topic's 'fsp-b'"):
        decode_offer(market_topic("fsp-b", "offer"), payload)
    with pytest.raises(ContractError, match="takes only offers"):
        decode_offer(market_topic("fsp-a", "order"), payload)
    with pytest.raises(ContractError, match="schema violation: options"):
        decode_offer(market_topic("fsp-a", "offer"), payload.replace(b'"options":[', b'"options":[1,'))


def test_wire_models_refuse_off_grid_duplicate_and_unbounded_values() -> None:
    with pytest.raises(ValidationError, match="ISP grid"):
        MarketIsp(start=DELIVERY + timedelta(minutes=1), kw=1.0)
    with pytest.raises(ValidationError, match="an ISP is given twice"):
        MarketRequest(
            request_id="r",
            congestion_point="cp",
            ts=NOW,
            isps=[*_isps(1.0), _isps(1.0)[0]],
            value_eur_per_kwh=1.0,
        )
    with pytest.raises(ValidationError, match="finite"):
        MarketRequest(
            request_id="r", congestion_point="cp", ts=NOW, isps=_isps(1.0), value_eur_per_kwh=float("inf")
        )


def test_fsp_acl_gives_each_fsp_its_own_subtree_only() -> None:
    acl = fsp_acl(["fsp-b", "fsp-a"])
    block_a = acl.split("user fsp-a\n")[1].split("\n\n")[0].splitlines()
    assert block_a == [
        "topic write gridflex/v1/market/fsp-a/offer",
        "topic read gridflex/v1/market/fsp-a/request",
        "topic read gridflex/v1/market/fsp-a/order",
        "topic read gridflex/v1/market/fsp-a/settlement",
    ]
    assert "pattern" not in acl  # no %u patterns: a site identity gains no market topic
    with pytest.raises(ValueError, match="invalid FSP id"):
        fsp_acl(["fsp/#"])


async def test_clears_by_itself_at_gate_closure(tmp_path: Path) -> None:
    clock = SimClock(NOW)
    config = MarketConfig(fsps={"fsp-a": {}, "fsp-b": {}}, congestion_points={"feeder-1": ["a1", "b1"]})
    session = MqttSession(MqttConfig(port=1))  # never connected: every publish fails, and is counted
    shell = MarketShell(config, tmp_path / "market.sqlite", clock=clock, session=session)
    try:
        shell.book.post_request(
            MarketRequest(
                request_id="r1",
                congestion_point="feeder-1",
                ts=NOW,
                isps=_isps(15.0),
                value_eur_per_kwh=100.0,
            ),
            NOW,
        )
        for oid, fsp, price in (("a-10", "fsp-a", 10.0), ("b-20", "fsp-b", 20.0), ("a-30", "fsp-a", 30.0)):
            shell.book.post_offer(_offer(oid, fsp, price), fsp, NOW)
        assert shell.book.next_gate() == DELIVERY - timedelta(hours=2)
        task = asyncio.create_task(shell.run())
        await clock.step((DELIVERY - timedelta(hours=2, minutes=1) - NOW).total_seconds(), tick_s=60)
        assert shell.store.clearings() == []
        await clock.step(120, tick_s=60)
        async with asyncio.timeout(30):
            while not shell.store.clearings():
                await asyncio.sleep(0.02)
        (summary,) = shell.store.clearings()
        assert summary["status"] == "cleared" and summary["cost_eur"] == pytest.approx(200.0, abs=1e-6)
        assert {o.offer_id: o.isps[0].kw for o in shell.store.orders()} == pytest.approx(
            {"a-10": 10.0, "b-20": 5.0}
        )
        async with asyncio.timeout(30):
            while shell.stats.publish_failed < 2:
                await asyncio.sleep(0.02)
        assert shell.stats.auto_clearings == 1 and shell.stats.published == 0
        assert shell.book.next_gate() is None
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        shell.close()


def test_an_offer_expired_by_the_clearing_is_marked_and_not_ordered(tmp_path: Path) -> None:
    config = MarketConfig(fsps={"fsp-a": {}}, congestion_points={"feeder-1": ["a1"]})
    shell = MarketShell(
        config, tmp_path / "market.sqlite", clock=SimClock(NOW), session=MqttSession(MqttConfig(port=1))
    )
    try:
        book = shell.book
        book.post_request(
            MarketRequest(
                request_id="r1", congestion_point="feeder-1", ts=NOW, isps=_isps(5.0), value_eur_per_kwh=50.0
            ),
            NOW,
        )
        book.post_offer(
            _offer("cheap", "fsp-a", 1.0).model_copy(update={"expires": NOW + timedelta(hours=1)}),
            "fsp-a",
            NOW,
        )
        book.post_offer(_offer("dear", "fsp-a", 9.0), "fsp-a", NOW)
        record = book.clear(NOW + timedelta(hours=2))
        assert record is not None and [o.offer_id for o in record.orders] == ["dear"]
        assert {o.offer_id: s for o, s, _ in shell.store.offers()} == {"cheap": "expired", "dear": "ordered"}
    finally:
        shell.close()
