"""The FSPs' battery-discharge product: the kW a battery can promise per ISP, its setpoint, and its dispatch on the twin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from cloud_controller.market.book import Book
from cloud_controller.market.config import FspConfig, MarketConfig
from cloud_controller.market.store import MarketStore
from gridflex.loop.fsp_battery import BatteryBook, SiteBattery, battery_offer_kw, battery_setpoint_kw
from gridflex.loop.fsp_offers import AGG_FSP, FspPlan
from gridflex.loop.fsp_prognosis import DevicePrognosis
from gridflex.loop.reference_run import ReferenceRun
from gridflex.loop.twin_market import TwinMarket
from protocols.assets import BATTERY, EV, HP, Points
from protocols.market import MarketIsp, MarketRequest

T0 = datetime(2030, 1, 15, 16, 0, tzinfo=UTC)  # the first ordered ISP
ISP = timedelta(minutes=15)
NOW = T0 - timedelta(hours=1)


def test_a_10_kwh_battery_at_60_pct_over_a_20_pct_floor_promises_its_5_kw_over_2_isps() -> None:
    # 4 kWh above the floor: 5 kW for 2 ISPs (0.5 h, 2.5 kWh) is within it; it would last 0.8 h at 5 kW
    assert battery_offer_kw(10.0, 60.0, 20.0, 5.0, 2) == pytest.approx(5.0)
    # over 4 ISPs (1 h) the energy binds: 4 kWh / 1 h
    assert battery_offer_kw(10.0, 60.0, 20.0, 5.0, 4) == pytest.approx(4.0)
    # with 95 % discharge efficiency only 3.8 kWh reach the grid
    assert battery_offer_kw(10.0, 60.0, 20.0, 5.0, 4, eta_discharge=0.95) == pytest.approx(3.8)


def test_what_the_batterys_own_loop_already_discharges_is_not_promised_again() -> None:
    assert battery_offer_kw(10.0, 60.0, 20.0, 5.0, 2, expected_kw=-2.0) == pytest.approx(3.0)
    assert battery_offer_kw(10.0, 60.0, 20.0, 5.0, 2, expected_kw=1.5) == pytest.approx(5.0)  # charging: full
    assert battery_offer_kw(10.0, 20.0, 20.0, 5.0, 2) == 0.0  # at the floor
    assert battery_offer_kw(10.0, 15.0, 20.0, 5.0, 2) == 0.0  # below it
    assert battery_offer_kw(10.0, 60.0, 20.0, 5.0, 0) == 0.0  # no ISP


def test_the_setpoint_discharges_the_share_beyond_the_expected_power_within_the_inverter() -> None:
    assert battery_setpoint_kw(3.0, 5.0) == pytest.approx(-3.0)
    assert battery_setpoint_kw(3.0, 5.0, expected_kw=-1.5) == pytest.approx(-4.5)
    assert battery_setpoint_kw(4.0, 5.0, expected_kw=-2.0) == pytest.approx(-5.0)  # the inverter's limit
    assert battery_setpoint_kw(3.0, 5.0, expected_kw=2.0) == pytest.approx(
        -3.0
    )  # charging is not the baseline's relief


def _battery(site: str = "b001", soc_pct: float = 60.0) -> SiteBattery:
    return SiteBattery(site, 10.0, 5.0, 1.0, (NOW - ISP,), (soc_pct,), {})


def test_promised_discharge_lowers_the_next_offer() -> None:
    book = BatteryBook({"b001": _battery()})
    starts = [T0, T0 + ISP]
    assert book.offer(["b001", "b002"], starts, NOW) == {T0: {"b001": 5.0}, T0 + ISP: {"b001": 5.0}}
    book.offered["o1"] = book.offer(["b001"], starts, NOW)
    bat, rest_kw = book.dispatch("o1", T0, 7.0)  # the battery takes its 5 kW, 2 kW are left for the devices
    assert bat == [("b001", -5.0)] and rest_kw == pytest.approx(2.0)
    assert book.promised_kwh == {"b001": pytest.approx(1.25)}
    # 2.75 kWh above the floor are left: over 1 ISP 5 kW, over 4 ISPs 2.75 kW
    assert book.offer(["b001"], [T0 + 4 * ISP + k * ISP for k in range(4)], NOW)[T0 + 4 * ISP] == {
        "b001": pytest.approx(2.75)
    }


def test_an_order_on_the_twin_discharges_the_battery_first_and_limits_the_devices_for_the_rest(
    tmp_path: Path,
) -> None:
    times = tuple(T0 + k * timedelta(minutes=5) for k in range(1, 4))
    run = ReferenceRun(
        ("b001",),
        times,
        np.full((3, 1), 20.0),
        {Points.EV_P_KW: np.array([[11.0]] * 3), Points.HP_P_KW: np.array([[6.0]] * 3)},
    )
    prog = DevicePrognosis.from_run(run, ["b001"])  # the EV can give 6.8 kW, the heat pump 1.8
    config = MarketConfig(
        fsps={AGG_FSP: FspConfig()}, congestion_points={"t_idx_77": ["b001"]}, gate_closure_s=1800.0
    )
    plan = FspPlan(AGG_FSP, ("b001",), 20.0, 0.15, prog.available_kw(["b001"]), prog.baseline_kw(["b001"]))
    market = TwinMarket(
        Book(config, MarketStore(tmp_path / "m.sqlite")),
        "t_idx_77",
        [plan],
        prog,
        {("b001", EV): 11.0, ("b001", HP): 6.0},
        0.1,
        batteries=BatteryBook({"b001": _battery()}),
    )
    need = MarketRequest(
        request_id="auto-t_idx_77-1",
        congestion_point="t_idx_77",
        ts=NOW,
        isps=[MarketIsp(start=T0, kw=12.0)],
        value_eur_per_kwh=0.5,
    )
    market.book.post_request(need, NOW)
    assert market.step(NOW, None, None) == []
    # the devices alone could give 8.6 kW; with the battery's 5 kW it offers the 12 kW asked
    assert [o.options[0].isps[0].kw for o, _, _ in market.book.store.offers()] == [12.0]
    assert market.step(T0 - 2 * ISP, None, None) == []  # the gate closes: ordered
    due = market.step(T0, None, None)
    f = 7.0 / 8.6  # the devices give the 7 kW the battery does not
    assert [(c.site, c.asset, c.kind) for c in due] == [
        ("b001", BATTERY, "p_setpoint_kw"),
        ("b001", EV, "p_limit_kw"),
        ("b001", HP, "p_limit_kw"),
    ]
    assert [c.value for c in due] == pytest.approx([-5.0, 11.0 - f * 6.8, 6.0 - f * 1.8], abs=1e-3)
    assert all(c.valid_from == T0 for c in due)
    assert market.batteries is not None and market.batteries.promised_kwh == {"b001": pytest.approx(1.25)}
