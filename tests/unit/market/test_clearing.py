"""The market's clearing on the issue's test vectors: welfare, pay-as-clear, factors, gate, grid rows, orange."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cloud_controller.market import (
    ClearingOptions,
    FlexOffer,
    FlexRequest,
    GridRow,
    MarketRefusal,
    OfferOption,
    check_activation_factor,
    check_gate,
    clear,
    headroom_at_risk,
)

DELIVERY = datetime(2030, 1, 15, 17, 0, tzinfo=UTC)
HOUR = [DELIVERY + timedelta(minutes=15 * k) for k in range(4)]  # one hour of ISPs
NOW = DELIVERY - timedelta(hours=3)  # before the 2-h gate closure


def _request(kw: float, value: float = 100.0, cp: str = "T_idx_118") -> FlexRequest:
    return FlexRequest("r1", cp, {t: kw for t in HOUR}, value_eur_per_kwh=value)


def _offer(
    oid: str, kw: float, price: float, *, min_factor: float = 0.0, cp: str = "T_idx_118", **kw_args: object
) -> FlexOffer:
    return FlexOffer(
        offer_id=oid,
        fsp=f"fsp-{oid}",
        congestion_point=cp,
        options=(OfferOption("o1", {t: kw for t in HOUR}, price, min_factor),),
        submitted=kw_args.pop("submitted", NOW),  # type: ignore[arg-type]
        expires=DELIVERY + timedelta(hours=1),
        **kw_args,  # type: ignore[arg-type]
    )


def test_welfare_buys_the_cheapest_divisible_offers_first() -> None:
    """Three offers of 10 kW at 10, 20 and 30 €/kWh, 15 kW needed for 1 h: 10 kW at 10 + 5 kW at 20 = 200 €."""
    got = clear([_request(15.0)], [_offer("a", 10, 10), _offer("b", 10, 20), _offer("c", 10, 30)], now=NOW)
    assert got.status == "cleared" and not got.shortfall_kw
    assert {o.offer_id: o.factor for o in got.orders} == {"a": 1.0, "b": 0.5}
    assert got.cost_eur == pytest.approx(200.0)
    assert all(o.kw[t] == pytest.approx(10.0 if o.offer_id == "a" else 5.0) for o in got.orders for t in HOUR)
    assert got.welfare_eur == pytest.approx(100.0 * 15.0 - 200.0)


def test_pay_as_clear_pays_every_order_the_highest_accepted_price() -> None:
    """Cleared at 3.5 €/kWh, 50 kW and 45 kW for 1 h: 332.5 € paid in total."""
    offers = [_offer("a", 50, 3.5), _offer("b", 45, 3.0)]
    bid = clear([_request(95.0)], offers, now=NOW)
    paid = clear([_request(95.0)], offers, now=NOW, options=ClearingOptions(pricing="pay_as_clear"))
    assert sum(o.price_eur for o in bid.orders) == pytest.approx(50 * 3.5 + 45 * 3.0)
    assert {o.price_eur_per_kwh for o in paid.orders} == {3.5}
    assert sum(o.price_eur for o in paid.orders) == pytest.approx(332.5)


def test_a_minimum_activation_factor_of_half_orders_zero_or_at_least_half() -> None:
    check_activation_factor(0.0, 0.5)
    check_activation_factor(0.5, 0.5)
    check_activation_factor(1.0, 0.5)
    with pytest.raises(MarketRefusal, match=r"0\.3 is neither 0 nor within \[0\.5, 1\]"):
        check_activation_factor(0.3, 0.5)
    # 3 kW needed, a 10 kW option that cannot go below 5 kW: ordered at 0.5, never at 0.3
    got = clear([_request(3.0)], [_offer("a", 10, 1.0, min_factor=0.5)], now=NOW)
    assert [o.factor for o in got.orders] == [0.5] and not got.shortfall_kw
    # ... unless relief is worth less than the lump costs: then not at all, the need stays open
    dear = clear([_request(3.0, value=1.5)], [_offer("a", 10, 1.0, min_factor=0.5)], now=NOW)
    assert not dear.orders and dear.status == "partial"


def test_an_offer_one_second_after_gate_closure_is_refused_with_the_reason() -> None:
    gate = DELIVERY - timedelta(hours=2)
    check_gate(gate, DELIVERY)  # at gate closure: still in
    with pytest.raises(MarketRefusal, match="gate_closure: submitted 1 s after gate closure"):
        check_gate(gate + timedelta(seconds=1), DELIVERY)
    late = _offer("late", 10, 1.0, submitted=gate + timedelta(seconds=1))
    got = clear([_request(10.0)], [late, _offer("ok", 10, 5.0)], now=gate + timedelta(seconds=2))
    assert [o.offer_id for o in got.orders] == ["ok"]
    assert got.refused[0][0] == "late" and "1 s after gate closure" in got.refused[0][1]


def test_the_cheapest_offer_that_would_overload_a_feeder_is_not_ordered_the_next_one_is() -> None:
    """GOPACS: an order must not cause congestion elsewhere. Offer a's sites load feeder F (kW per kW of
    relief: +1.0, e.g. a shift onto a feeder near its limit); F can take 4 kW more at the risk level."""
    cheap = _offer("cheap", 10, 1.0, min_factor=1.0, sensitivity={"line:F": 1.0})
    other = _offer("other", 10, 2.0, min_factor=1.0, sensitivity={"line:F": 0.0})
    rows = [GridRow("line:F", {t: 4.0 for t in HOUR})]
    got = clear([_request(10.0)], [cheap, other], now=NOW, grid_rows=rows)
    assert [o.offer_id for o in got.orders] == ["other"] and got.status == "cleared"
    free = clear([_request(10.0)], [cheap, other], now=NOW)
    assert [o.offer_id for o in free.orders] == ["cheap"]  # the row is what kept it out


def test_orange_buys_all_that_is_offered_and_reports_the_rest() -> None:
    """50 kW needed, 30 kW offered: all 30 ordered, 20 kW per ISP reported for the curative guard."""
    got = clear([_request(50.0)], [_offer("a", 10, 5.0), _offer("b", 20, 8.0)], now=NOW)
    assert got.status == "partial"
    assert sum(o.kw[HOUR[0]] for o in got.orders) == pytest.approx(30.0)
    assert got.shortfall_kw == {("T_idx_118", t): pytest.approx(20.0) for t in HOUR}


def test_expired_revoked_and_foreign_offers_are_left_out_with_their_reason() -> None:
    expired = FlexOffer(
        "x", "f", "T_idx_118", (OfferOption("o", {HOUR[0]: 5.0}, 1.0),), NOW - timedelta(hours=2), NOW
    )
    revoked = _offer("r", 5, 1.0, revoked=True)
    foreign = _offer("f", 5, 1.0, cp="T_idx_80")
    got = clear([_request(5.0)], [expired, revoked, foreign], now=NOW)
    reasons = dict(got.refused)
    assert "expired" in reasons["x"] and reasons["r"] == "revoked" and "T_idx_80" in reasons["f"]
    assert not got.orders and got.status == "partial"


def test_the_ac_check_stops_orders_that_break_the_grid() -> None:
    got = clear(
        [_request(10.0)], [_offer("a", 10, 1.0)], now=NOW, ac_check=lambda orders: ["line:7 at 104 %"]
    )
    assert got.status == "ac_check_failed" and not got.orders and got.violations == ("line:7 at 104 %",)
    ok = clear([_request(10.0)], [_offer("a", 10, 1.0)], now=NOW, ac_check=lambda orders: [])
    assert ok.status == "cleared" and len(ok.orders) == 1


def test_headroom_at_risk_is_the_limit_minus_the_flow_quantile() -> None:
    flows = list(range(1, 101))  # 1..100 kW, one per scenario
    assert headroom_at_risk(120.0, flows, 0.1) == pytest.approx(120.0 - 90.1)
    assert headroom_at_risk(50.0, flows, 0.1) < 0  # already over at that risk: nothing may add to it
    with pytest.raises(ValueError):
        headroom_at_risk(1.0, flows, 0.0)


def test_bad_requests_and_options_are_refused() -> None:
    with pytest.raises(MarketRefusal, match="negative need"):
        FlexRequest("r", "cp", {HOUR[0]: -1.0}, 10.0)
    with pytest.raises(MarketRefusal, match="min_activation_factor"):
        OfferOption("o", {HOUR[0]: 1.0}, 1.0, 1.5)
    with pytest.raises(MarketRefusal, match="two requests"):
        clear([_request(1.0), _request(2.0)], [], now=NOW)
