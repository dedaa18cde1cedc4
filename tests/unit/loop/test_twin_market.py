"""The market on the twin's time: request → the FSPs' offers → clearing at gate closure → limits in their ISP → settlement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from cloud_controller.market.book import Book
from cloud_controller.market.config import FspConfig, MarketConfig
from cloud_controller.market.store import MarketStore
from gridflex.loop.fsp_offers import AGG_FSP, SCRIPTED_FSP, FspPlan
from gridflex.loop.fsp_prognosis import DevicePrognosis
from gridflex.loop.reference_run import ReferenceRun
from gridflex.loop.twin import TwinResult
from gridflex.loop.twin_market import TwinMarket, twin_metering
from protocols.assets import EV, HP, Points
from protocols.market import MarketIsp, MarketRequest

T0 = datetime(2030, 1, 15, 16, 0, tzinfo=UTC)  # the ordered ISP
ISP = timedelta(minutes=15)
NOW = T0 - timedelta(hours=1)


def _prognosis() -> DevicePrognosis:
    """b001: EV at 11 kW and heat pump at 6 kW through 16:00-16:15; b002: heat pump at 6 kW."""
    times = tuple(T0 + k * timedelta(minutes=5) for k in range(1, 4))
    ev = np.array([[11.0, np.nan]] * 3)
    hp = np.array([[6.0, 6.0]] * 3)
    run = ReferenceRun(
        ("b001", "b002"), times, np.full((3, 2), 20.0), {Points.EV_P_KW: ev, Points.HP_P_KW: hp}
    )
    return DevicePrognosis.from_run(run, ["b001", "b002"])


def _market(tmp_path: Path) -> TwinMarket:
    config = MarketConfig(
        fsps={AGG_FSP: FspConfig(), SCRIPTED_FSP: FspConfig()},
        congestion_points={"t_idx_77": ["b001", "b002", "b003"]},
        gate_closure_s=1800.0,
    )
    prog = _prognosis()
    plans = [
        FspPlan(
            AGG_FSP,
            ("b001",),
            20.0,
            0.15,
            prog.available_kw(["b001"]),
            prog.baseline_kw(["b001"]),
            "fsp_prognosis",
        ),
        FspPlan(
            SCRIPTED_FSP,
            ("b002",),
            20.0,
            0.30,
            prog.available_kw(["b002"]),
            prog.baseline_kw(["b002"]),
            "fsp_prognosis",
        ),
    ]
    nominal = {("b001", EV): 11.0, ("b001", HP): 6.0, ("b002", HP): 6.0}
    return TwinMarket(Book(config, MarketStore(tmp_path / "m.sqlite")), "t_idx_77", plans, prog, nominal, 0.1)


def test_an_order_reaches_its_devices_as_limits_valid_over_its_isp_and_is_settled(tmp_path: Path) -> None:
    market = _market(tmp_path)
    need = MarketRequest(
        request_id="auto-t_idx_77-1",
        congestion_point="t_idx_77",
        ts=NOW,
        isps=[MarketIsp(start=T0, kw=8.0)],
        value_eur_per_kwh=0.5,
    )
    market.book.post_request(need, NOW)
    assert market.step(NOW, None, None) == []  # both FSPs offer; nothing is due yet
    offers = market.book.store.offers()
    # b001 can give 6.8 + 1.8 = 8.6 kW, b002 1.8 kW: each offers min(need, what it can give)
    assert sorted((o.fsp, o.options[0].isps[0].kw) for o, _, _ in offers) == [
        (AGG_FSP, 8.0),
        (SCRIPTED_FSP, 1.8),
    ]
    assert (
        market.step(T0 - ISP - ISP, None, None) == []
    )  # 15:30: the gate closes, the cheaper offer is ordered
    orders = market.book.store.orders()
    assert [(o.fsp, o.isps[0].kw) for o in orders if o.isps[0].kw > 0] == [(AGG_FSP, 8.0)]
    assert market.step(T0 - timedelta(seconds=30), None, None) == []  # a limit is not sent before its ISP
    due = market.step(T0, None, None)
    f = 8.0 / 8.6  # the share of what each device can give
    assert [(c.site, c.asset, c.kind) for c in due] == [
        ("b001", EV, "p_limit_kw"),
        ("b001", HP, "p_limit_kw"),
    ]
    assert [c.value for c in due] == pytest.approx([11.0 - f * 6.8, 6.0 - f * 1.8], abs=1e-3)
    assert all(c.valid_from == T0 and c.valid_until == T0 + ISP + timedelta(seconds=30) for c in due)
    # settled against the offer's prognosis (20 kW): the sites drew 12.5 kW → 7.5 kW delivered, 0.5 short
    result = TwinResult(interval_starts=[T0], site_p_kw={"b001": [12.5], "b002": [20.0]})
    done, failed = market.book.settle_due(T0 + ISP, twin_metering(result))
    assert failed == []
    assert len(done) == 1
    assert done[0].delivered_kwh == pytest.approx(7.5 / 4) and done[0].deficiency_kwh == pytest.approx(
        0.5 / 4
    )


def test_the_benchs_summary_is_the_mean_and_sample_spread_per_source() -> None:
    from gridflex.loop.market_relief import ReliefRow, summarise

    def row(seed: int, source: str, relief: float, net: float) -> ReliefRow:
        per_eur = round(relief / net, 3) if net > 0 else None
        return ReliefRow(seed, source, 2, 10.0, 10.0 - relief, relief, 5.0, 1, 1.0, 0.9, net, per_eur, 1.0)

    rows = [row(1, "schedule", 1.0, 0.5), row(2, "schedule", 3.0, 0.5), row(3, "schedule", 0.0, 0.0)]
    got = summarise([*rows, row(1, "nominal", 2.0, 1.0)])
    assert list(got) == ["schedule", "nominal"]
    s = got["schedule"]
    assert s["seeds"] == [1, 2, 3]
    assert s["relief_kvah"] == {"mean": 1.333, "sd": 1.528, "min": 0.0, "max": 3.0}
    # per euro over the seeds that paid: 2 and 6 kVAh/EUR
    assert s["relief_kvah_per_eur"] == {"mean": 4.0, "sd": 2.828, "min": 2.0, "max": 6.0}
    assert got["nominal"]["relief_kvah"]["sd"] == 0.0  # one seed: no spread


def test_the_bench_refuses_an_unknown_offer_source_before_it_runs(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gridflex.bench import bench_app

    out = tmp_path / "relief.json"
    got = CliRunner().invoke(
        bench_app, ["market-relief", "--prognosis", "schedule,oracle", "--out", str(out)]
    )
    assert got.exit_code == 2 and "schedule, yesterday, nominal" in got.output
    assert not out.exists()


@pytest.mark.slow
def test_the_twin_gives_one_relief_per_seed_and_the_orders_are_delivered() -> None:
    """Seed 1 of `gridflex bench market-relief` twice: the same figures; orders delivered, relief above 0."""
    from cloud_controller import build_schutterwald_region
    from gridflex.loop.market_relief import demo_settings, relief_of_seed

    region = build_schutterwald_region()
    ((first, details),) = relief_of_seed(demo_settings(1), region, ("schedule",))
    ((again, _),) = relief_of_seed(demo_settings(1), region, ("schedule",))
    assert {k: v for k, v in vars(first).items() if k != "cpu_s"} == {
        k: v for k, v in vars(again).items() if k != "cpu_s"
    }
    assert first.orders >= 1 and details["unsettled"] == []
    assert first.delivered_kwh >= 0.8 * first.ordered_kwh  # offers from what runs are delivered
    assert (
        first.relief_kvah > 0.0 and first.relief_kvah_per_eur is not None and first.relief_kvah_per_eur > 0.0
    )
