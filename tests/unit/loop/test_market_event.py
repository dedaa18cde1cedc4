"""`gridflex demo --market`'s parts: the FSPs' offers, order → DR request, and request → order → settlement numbers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloud_controller.market.book import Book
from cloud_controller.market.config import FspConfig, MarketConfig
from cloud_controller.market.store import MarketStore
from gridflex.loop.market_event import (
    AGG_FSP,
    MARKET_PROGRAM,
    SCRIPTED_FSP,
    FspPlan,
    dr_request_of,
    gap_filled_means,
    market_sites,
    offer_for,
    split_sites,
)
from gridflex.loop.market_report import against_reference, market_markdown, market_section
from gridflex.loop.report import ElementFigures
from protocols.market import MarketIsp, MarketOrder, MarketRequest

NOW = datetime(2030, 1, 15, 15, 0, tzinfo=UTC)
T0 = datetime(2030, 1, 15, 16, 0, tzinfo=UTC)  # first ISP: its gate (30 min before) is still open
ISP = timedelta(minutes=15)
AGG = FspPlan(AGG_FSP, ("b001", "b003"), cap_kw=12.0, price_eur_per_kwh=0.15)
SCRIPTED = FspPlan(SCRIPTED_FSP, ("b002",), cap_kw=10.0, price_eur_per_kwh=0.30)
CONFIG = MarketConfig(
    fsps={AGG_FSP: FspConfig(), SCRIPTED_FSP: FspConfig()},
    congestion_points={"t_idx_77": ["b001", "b002", "b003"]},
    gate_closure_s=1800.0,
)


def _request(kws: Sequence[float], start: datetime = T0) -> MarketRequest:
    return MarketRequest(
        request_id="auto-t_idx_77-1",
        congestion_point="t_idx_77",
        ts=NOW,
        isps=[MarketIsp(start=start + k * ISP, kw=kw) for k, kw in enumerate(kws)],
        value_eur_per_kwh=0.5,
    )


def test_split_sites_alternates_between_the_two_fsps() -> None:
    assert split_sites(["b003", "b001", "b002", "b004"]) == {
        AGG_FSP: ["b001", "b003"],
        SCRIPTED_FSP: ["b002", "b004"],
    }


def test_an_offer_is_the_need_capped_per_isp_without_the_isps_whose_gate_is_too_close() -> None:
    # ISP 15:30's gate is 15:00 (now): gone; 15:45's is 15:15, within one ISP of now: gone too
    req = _request([20.0, 20.0, 5.0, 30.0], start=datetime(2030, 1, 15, 15, 30, tzinfo=UTC))
    offer = offer_for(AGG, req.model_dump(mode="json"), NOW, 0)
    assert offer is not None
    isps = {i.start.strftime("%H:%M"): i.kw for i in offer.options[0].isps}
    assert isps == {"16:00": 5.0, "16:15": 12.0}
    assert offer.sites == ["b001", "b003"] and offer.request_id == req.request_id
    assert offer.options[0].price_eur_per_kwh == 0.15 and offer.options[0].min_activation_factor == 0.0
    assert offer.expires == datetime(2030, 1, 15, 16, 0, tzinfo=UTC)
    late = _request([20.0], start=datetime(2030, 1, 15, 15, 30, tzinfo=UTC))
    assert offer_for(AGG, late.model_dump(mode="json"), NOW, 1) is None


def test_an_order_becomes_a_dr_request_of_its_kw_per_isp_on_its_sites() -> None:
    order = MarketOrder(
        order_id="c1-o1",
        clearing_id="c1",
        offer_id="x",
        option_id="all",
        fsp=AGG_FSP,
        congestion_point="t_idx_77",
        ts=NOW,
        factor=1.0,
        isps=[MarketIsp(start=T0, kw=4.0), MarketIsp(start=T0 + 2 * ISP, kw=6.0)],
        price_eur_per_kwh=0.15,
        price_eur=0.375,
    )
    req = dr_request_of(order, ["b001"], NOW)
    assert (req.program, req.direction, req.sites) == (MARKET_PROGRAM, "reduce", ["b001"])
    assert (req.start, req.end, req.p_kw) == (T0, T0 + 3 * ISP, 6.0)
    assert [i.p_kw for i in req.intervals] == [4.0, 0.0, 6.0]


def test_request_offers_orders_and_settlement_give_the_summary_numbers(tmp_path: Path) -> None:
    """20 kW needed in two ISPs; GridFlex's aggregator ≤ 12 kW at 0.15, the scripted FSP ≤ 10 kW at 0.30.

    Cleared: 12 + 8 kW per ISP → 6 kWh × 0.15 = 0.90 EUR and 4 kWh × 0.30 = 1.20 EUR.
    Metered: the aggregator's sites 10 kW below their baseline (2 kW short per ISP → 1 kWh,
    penalty 0.15, net 0.75); the scripted FSP's 10 kW below (8 ordered: no penalty, net 1.20).
    """
    store = MarketStore(tmp_path / "market.sqlite")
    try:
        book = Book(CONFIG, store)
        req = _request([20.0, 20.0])
        book.post_request(req, NOW)
        for n, plan in enumerate((AGG, SCRIPTED)):
            offer = offer_for(plan, req.model_dump(mode="json"), NOW, n)
            assert offer is not None
            book.post_offer(offer, plan.fsp, NOW)
        record = book.clear(T0 - timedelta(minutes=30), gate_closed_only=True)
        assert record is not None and record.summary["status"] == "cleared"
        ordered = {o.fsp: [i.kw for i in o.isps] for o in record.orders}
        assert ordered == {AGG_FSP: pytest.approx([12.0, 12.0]), SCRIPTED_FSP: pytest.approx([8.0, 8.0])}

        def meter(
            sites: Sequence[str], isps: Sequence[datetime], baseline: str
        ) -> tuple[dict[datetime, float], dict[datetime, float]]:
            base = 30.0 if "b001" in sites else 20.0
            return {t: base for t in isps}, {t: base - 10.0 for t in isps}

        done, failed = book.settle_due(T0 + 2 * ISP, meter)
        assert failed == [] and len(done) == 2
        m = market_section(
            store.requests(), [(o, s) for o, s, _ in store.offers()], store.orders(), store.settlements()
        )
    finally:
        store.close()
    assert m["requests"]["kw_per_isp"] == {T0.isoformat(): 20.0, (T0 + ISP).isoformat(): 20.0}
    assert m["offers"]["by_fsp_status"] == {f"{AGG_FSP}:ordered": 1, f"{SCRIPTED_FSP}:ordered": 1}
    assert m["orders"]["count"] == 2 and m["orders"]["kwh"] == pytest.approx(10.0)
    assert m["orders"]["price_eur"] == pytest.approx(2.10)
    per = m["per_fsp"]
    assert per[AGG_FSP]["deficiency_kwh"] == pytest.approx(1.0)
    assert per[AGG_FSP]["penalty_eur"] == pytest.approx(0.15)
    assert per[AGG_FSP]["net_eur"] == pytest.approx(0.75)
    assert per[SCRIPTED_FSP]["penalty_eur"] == pytest.approx(0.0)
    assert per[SCRIPTED_FSP]["net_eur"] == pytest.approx(1.20)
    assert m["settlement"]["net_eur"] == pytest.approx(1.95)
    assert m["settlement"]["price_eur"] - m["settlement"]["penalty_eur"] == pytest.approx(1.95)
    assert m["settlement"]["ordered_vs_delivered_kw_per_isp"][T0.isoformat()]["ordered"] == pytest.approx(
        20.0
    )
    md = market_markdown(m)
    assert "net paid 1.95 EUR" in md
    # delivered is baseline − actual, not capped at the order: the scripted FSP's 5 kWh for 4 ordered
    assert "| gridflex-agg | 6.00 | 0.90 | 0.90 | 5.00 | 1.00 | 0.15 | 0.75 |" in md
    assert "| scripted-fsp | 4.00 | 1.20 | 1.20 | 5.00 | 0.00 | 0.00 | 1.20 |" in md


def test_an_isp_without_a_sample_is_interpolated_between_its_neighbours_and_reported() -> None:
    # samples at 15:59 (2 kW) and 16:16 (4 kW): ISP 16:00 has none; its middle (16:07:30) is 2 + 2 × 8.5/17
    samples = [(T0 - timedelta(minutes=1), 2.0), (T0 + timedelta(minutes=16), 4.0)]
    means, estimated = gap_filled_means(samples, [T0, T0 + ISP, T0 + 2 * ISP])
    assert estimated == [T0]
    assert means[T0] == pytest.approx(3.0)
    assert means[T0 + ISP] == pytest.approx(4.0)  # a real sample: its mean, not an estimate
    assert T0 + 2 * ISP not in means  # past the last sample: not invented


def test_the_fsps_get_every_other_flexible_site_and_split_them() -> None:
    flex = ["b006", "b001", "b004", "b003", "b002", "b005"]
    fsp_sites = market_sites(flex)
    assert fsp_sites == ["b002", "b004", "b006"]  # the controller keeps b001, b003, b005
    assert split_sites(fsp_sites) == {AGG_FSP: ["b002", "b006"], SCRIPTED_FSP: ["b004"]}


def _element(kvah: float, peak: float, over: int) -> ElementFigures:
    return ElementFigures("T_idx_77", 400.0, peak, over, kvah)


def test_relief_per_euro_is_the_kvah_removed_against_the_reference_over_the_net_paid() -> None:
    settlement = {"net_eur": 2.5, "delivered_kwh": 10.0}
    a = against_reference(_element(40.0, 115.0, 6), _element(30.0, 111.0, 5), settlement)
    assert (a["reference_kvah"], a["with_market_kvah"], a["relief_kvah"]) == (40.0, 30.0, 10.0)
    assert a["relief_kvah_per_eur"] == pytest.approx(4.0)  # 10 kVAh / 2.5 EUR
    assert a["relief_kvah_per_delivered_kwh"] == pytest.approx(1.0)
    # worse with the market: said as it is, not clipped to zero
    worse = against_reference(_element(40.0, 115.0, 6), _element(45.0, 116.0, 7), settlement)
    assert worse["relief_kvah"] == -5.0 and worse["relief_kvah_per_eur"] == pytest.approx(-2.0)
    nothing_paid = against_reference(
        _element(40.0, 115.0, 6), _element(40.0, 115.0, 6), {"net_eur": 0.0, "delivered_kwh": 0.0}
    )
    assert (
        nothing_paid["relief_kvah_per_eur"] is None and nothing_paid["relief_kvah_per_delivered_kwh"] is None
    )


def test_the_markdown_states_the_relief_per_euro() -> None:
    section = market_section([], [], [], [])
    section["against_reference"] = against_reference(
        _element(40.0, 115.0, 6), _element(30.0, 111.0, 5), {"net_eur": 2.5, "delivered_kwh": 10.0}
    )
    md = market_markdown(section)
    assert "| kVAh above the rating | 40.0 | 30.0 |" in md
    assert "relief 10.0 kVAh for 2.50 EUR net paid: 4.00 kVAh per EUR" in md
