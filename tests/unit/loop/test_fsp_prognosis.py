"""The FSPs' offers from what their devices will run: reducible kW per ISP, offers capped by it, the dispatch's limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from gridflex.loop.fsp_offers import AGG_FSP, FspPlan, offer_for, offer_kw
from gridflex.loop.fsp_prognosis import DevicePrognosis, device_prognosis, isp_mean, reducible_kw
from gridflex.loop.reference_run import ReferenceRun
from gridflex.loop.twin_market import limits_for
from protocols.assets import EV, HP, Points
from protocols.market import MarketIsp, MarketOrder, MarketRequest

T0 = datetime(2030, 1, 15, 16, 0, tzinfo=UTC)
ISP = timedelta(minutes=15)
STEP = timedelta(minutes=5)
NOW = datetime(2030, 1, 15, 15, 0, tzinfo=UTC)


def _run() -> ReferenceRun:
    """Two sites, 5-min steps over 16:00-16:30 (step ends 16:05 ... 16:30).

    b001: an EV at 11 kW for the first two steps, then off; a heat pump at 6 kW throughout.
    b002: no EV, a heat pump off in the first ISP and at 6 kW in the second.
    """
    times = tuple(T0 + (k + 1) * STEP for k in range(6))
    ev = np.array(
        [[11.0, np.nan], [11.0, np.nan], [0.0, np.nan], [0.0, np.nan], [0.0, np.nan], [0.0, np.nan]]
    )
    hp = np.array([[6.0, 0.0], [6.0, 0.0], [6.0, 0.0], [6.0, 6.0], [6.0, 6.0], [6.0, 6.0]])
    net = np.nan_to_num(ev) + hp + 0.5
    return ReferenceRun(("b001", "b002"), times, net, {Points.EV_P_KW: ev, Points.HP_P_KW: hp})


def test_a_limit_can_take_off_only_what_runs_above_the_14a_floor() -> None:
    got = reducible_kw(np.array([11.0, 6.0, 4.2, 3.0, 0.0, np.nan]))
    assert got == pytest.approx([6.8, 1.8, 0.0, 0.0, 0.0, 0.0])


def test_a_step_ending_on_a_boundary_counts_in_the_isp_before_it() -> None:
    times = [T0 + STEP, T0 + 2 * STEP, T0 + 3 * STEP, T0 + 4 * STEP]
    assert isp_mean(times, np.array([3.0, 6.0, 9.0, 100.0])) == {T0: 6.0, T0 + ISP: 100.0}
    shifted = isp_mean(times, np.array([3.0, 6.0, 9.0, 100.0]), shift=timedelta(days=1))
    assert list(shifted) == [T0 + timedelta(days=1), T0 + ISP + timedelta(days=1)]


def test_the_prognosis_gives_each_devices_expected_and_reducible_kw_per_isp() -> None:
    prog = DevicePrognosis.from_run(_run(), ["b001", "b002"])
    # the EV charges 2 of 3 steps in the first ISP: 11 × 2/3 expected, 6.8 × 2/3 reducible
    assert prog.device_kw[("b001", EV)] == pytest.approx({T0: 22.0 / 3, T0 + ISP: 0.0})
    assert prog.reducible_kw[("b001", EV)] == pytest.approx({T0: 13.6 / 3, T0 + ISP: 0.0})
    assert prog.reducible_kw[("b001", HP)] == pytest.approx({T0: 1.8, T0 + ISP: 1.8})
    assert ("b002", EV) not in prog.device_kw  # no EV at b002
    assert prog.available_kw(["b001", "b002"]) == pytest.approx({T0: 13.6 / 3 + 1.8, T0 + ISP: 3.6})
    assert prog.available_kw(["b002"]) == pytest.approx({T0: 0.0, T0 + ISP: 1.8})
    # the offer's D-prognosis: the sites' net load without activation
    assert prog.baseline_kw(["b001", "b002"]) == pytest.approx(
        {T0: 22.0 / 3 + 6.0 + 1.0, T0 + ISP: 6.0 + 6.0 + 1.0}
    )


def _request(kws: list[float]) -> dict[str, object]:
    req = MarketRequest(
        request_id="auto-t_idx_77-1",
        congestion_point="t_idx_77",
        ts=NOW,
        isps=[MarketIsp(start=T0 + k * ISP, kw=kw) for k, kw in enumerate(kws)],
        value_eur_per_kwh=0.5,
    )
    return req.model_dump(mode="json")


def test_an_offer_asks_no_more_than_the_running_devices_can_give() -> None:
    prog = DevicePrognosis.from_run(_run(), ["b001", "b002"])
    sites = ("b001", "b002")
    plan = FspPlan(
        AGG_FSP,
        sites,
        cap_kw=12.0,
        price_eur_per_kwh=0.15,
        available_kw=prog.available_kw(sites),
        prognosis_kw=prog.baseline_kw(sites),
        baseline="fsp_prognosis",
    )
    nominal = FspPlan(AGG_FSP, sites, cap_kw=12.0, price_eur_per_kwh=0.15)
    # need 20 kW in both ISPs: nominal offers its cap, 12 kW; the running devices give 6.33 and 3.6
    assert offer_kw(nominal, T0, 20.0) == 12.0
    assert offer_kw(plan, T0, 20.0) == 6.3  # 4.53 + 1.8, rounded down
    assert offer_kw(plan, T0 + ISP, 2.0) == 2.0  # the need is the smaller
    assert offer_kw(plan, T0 + 2 * ISP, 20.0) == 0.0  # outside the prognosis: nothing known to run
    offer = offer_for(plan, _request([20.0, 20.0]), NOW, 0)
    assert offer is not None
    assert [(i.start, i.kw) for i in offer.options[0].isps] == [(T0, 6.3), (T0 + ISP, 3.6)]
    assert offer.baseline == "fsp_prognosis"
    assert offer.prognosis is not None
    assert [(p.start, p.kw) for p in offer.prognosis] == [(T0, 14.333), (T0 + ISP, 13.0)]


def test_an_isp_where_nothing_runs_is_not_offered() -> None:
    prog = DevicePrognosis.from_run(_run(), ["b002"])
    plan = FspPlan(AGG_FSP, ("b002",), 12.0, 0.15, available_kw=prog.available_kw(["b002"]))
    offer = offer_for(plan, _request([5.0, 5.0]), NOW, 0)
    assert offer is not None
    assert [(i.start, i.kw) for i in offer.options[0].isps] == [(T0 + ISP, 1.8)]
    assert offer_for(plan, _request([5.0]), NOW, 1) is None  # b002's heat pump is off at 16:00


def test_an_order_is_split_over_the_devices_by_the_same_share_of_what_each_can_give() -> None:
    prog = DevicePrognosis.from_run(_run(), ["b001", "b002"])
    order = MarketOrder(
        order_id="o1:all",
        clearing_id="c1",
        offer_id="o1",
        option_id="all",
        fsp=AGG_FSP,
        congestion_point="t_idx_77",
        ts=NOW,
        factor=1.0,
        # 16:00: half of 6.33 kW; 16:15: all of 3.6 kW
        isps=[MarketIsp(start=T0, kw=(13.6 / 3 + 1.8) / 2), MarketIsp(start=T0 + ISP, kw=3.6)],
        price_eur_per_kwh=0.15,
        price_eur=0.0,
    )
    assert prog.cut_share(["b001", "b002"], T0, (13.6 / 3 + 1.8) / 2) == pytest.approx(0.5)
    nominal = {("b001", EV): 11.0, ("b001", HP): 6.0, ("b002", HP): 6.0}
    got = limits_for(order, ["b001", "b002"], prog, nominal)
    assert got == [
        (T0, "b001", EV, 7.6),  # 11 − 0.5 × 6.8
        (T0, "b001", HP, 5.1),  # 6 − 0.5 × 1.8
        # b002's heat pump is off at 16:00: left alone; at 16:15 every heat pump goes to the floor
        (T0 + ISP, "b001", HP, 4.2),
        (T0 + ISP, "b002", HP, 4.2),
    ]


def test_an_unknown_prognosis_source_is_refused() -> None:
    with pytest.raises(ValueError, match="schedule, yesterday, nominal"):
        device_prognosis(object(), ["b001"], "oracle")
    assert device_prognosis(object(), ["b001"], "nominal") is None


def test_the_demos_fsp_plans_carry_each_fsps_own_devices() -> None:
    """`MarketLoop.fsp_plans`: the aggregator gets b001, the scripted FSP b002, each with its own devices' kW."""
    from types import SimpleNamespace

    from gridflex.loop.fsp_offers import SCRIPTED_FSP, fsp_plans

    scenario = SimpleNamespace(no_control=_run(), yesterday=None)
    flex = {"b001": 17.0, "b002": 6.0}
    agg, scripted = fsp_plans(flex, ["b001", "b002"], scenario, "schedule")
    assert (agg.fsp, agg.sites, agg.cap_kw) == (AGG_FSP, ("b001",), 8.5)  # half the contracted kW
    assert (scripted.fsp, scripted.sites, scripted.cap_kw) == (SCRIPTED_FSP, ("b002",), 3.0)
    assert agg.available_kw == pytest.approx({T0: 13.6 / 3 + 1.8, T0 + ISP: 1.8})
    assert scripted.available_kw == pytest.approx({T0: 0.0, T0 + ISP: 1.8})
    (old, _) = fsp_plans(flex, ["b001", "b002"], scenario, "nominal")
    assert old.available_kw is None and old.prognosis_kw is None  # the former offers: the cap in every ISP
