"""The DR selection MILP on cases solved by hand: one per objective, exclusivity, partial answers, feeders.

The three-site case (two 1-hour steps, request: reduce 10 kW each):
  A  battery 10 kWh at 50 %, floor 5 %, η 0.95 both ways, 5 kW: 4.5 kWh above the floor
     gives 4.5 × 0.95 = 4.275 kWh AC over the event; paid 0.10 €/kWh
  B  a load that can drop 4 kW each step; paid 0.20 €/kWh
  C  an AHU fan that can drop 3 kW, then 1 kW; paid 0.05 €/kWh
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from cloud_controller.dr import (
    BatteryPhysics,
    Contract,
    Feeder,
    SelectionError,
    SelectionOptions,
    SelectionRequest,
    SiteLimit,
    Source,
    ZonePhysics,
    battery_source,
    select,
)
from flexmodels import BatteryFlexState, ComfortBand, RcZone, heatpump_flex_kw


def battery(site: str = "A", *, e_kwh: float = 5.0, cost: float = 0.10, n: int = 2) -> Source:
    return Source(
        site, "bat", "battery", [5.0] * n, [0.0] * n, cost_eur_per_kwh=cost,
        battery=BatteryPhysics(e_start_kwh=e_kwh, e_min_kwh=0.5, e_max_kwh=10.0, eta_charge=0.95, eta_discharge=0.95),
    )  # fmt: skip


B = Source("B", "load", "load", [4.0, 4.0], [0.0, 0.0], cost_eur_per_kwh=0.20)
C = Source("C", "fan", "fan", [3.0, 1.0], [0.0, 0.0], cost_eur_per_kwh=0.05)


def three(cost_a: float = 0.10) -> list[Source]:
    return [battery(cost=cost_a), B, C]


def kw(sel: object, site: str, asset: str) -> list[float]:
    return [round(float(v), 6) for v in sel.flex_kw[site, asset]]  # type: ignore[attr-defined]


def test_max_flexibility_delivers_all_the_portfolio_has_and_says_what_is_missing() -> None:
    # eq. 17: 4.275 + (4 + 4) + (3 + 1) = 16.275 kWh of the 20 asked; 3.725 kWh unmet
    sel = select(SelectionRequest([-10.0, -10.0], 1.0, "flexibility"), three())
    assert sel.objective_value == pytest.approx(16.275)
    assert sel.status == "partial"
    assert sel.unmet_kw.sum() == pytest.approx(3.725)
    assert kw(sel, "B", "load") == [-4.0, -4.0] and kw(sel, "C", "fan") == [-3.0, -1.0]
    assert sum(kw(sel, "A", "bat")) == pytest.approx(-4.275)


def test_max_financial_return_leaves_out_the_site_dearer_than_the_request() -> None:
    # price 0.15 €/kWh: B (0.20) loses money; A and C give 4.275 + 4 kWh:
    # 0.15 × 8.275 − (0.10 × 4.275 + 0.05 × 4) = 1.24125 − 0.6275 = 0.61375 €
    sel = select(SelectionRequest([-10.0, -10.0], 1.0, "financial", value_per_kwh=0.15), three())
    assert sel.objective_value == pytest.approx(0.61375)
    assert kw(sel, "B", "load") == [0.0, 0.0]
    assert "B" not in sel.sites
    assert sel.status == "partial"


def test_max_weighted_return_puts_the_battery_where_the_weight_is() -> None:
    # W = [0.5, 2.5]: the battery's 4.275 kWh all in step 2: delivered [7, 9.275];
    # 0.5 × 7 + 2.5 × 9.275 = 26.6875
    request = SelectionRequest(
        [-10.0, -10.0], 1.0, "financial", value_per_kwh=[0.5, 2.5], value_is_weight=True
    )
    sel = select(request, three())
    assert sel.delivered_kw.tolist() == pytest.approx([7.0, 9.275])
    assert sel.objective_value == pytest.approx(26.6875)


@pytest.mark.parametrize(("p_min_kw", "steps"), [(8.0, 2), (8.5, 1)], ids=["both-steps", "one-step"])
def test_max_bid_length(p_min_kw: float, steps: int) -> None:
    # step 1 gives 7 + A1, step 2 gives 5 + A2, A1 + A2 <= 4.275:
    # P_min 8 needs A1 >= 1, A2 >= 3 (4 <= 4.275: two steps); 8.5 needs 1.5 + 3.5 = 5 (> 4.275: one)
    sel = select(SelectionRequest([-10.0, -10.0], 1.0, "bid_length", bid_min_kw=p_min_kw), three())
    assert sel.objective_value == steps
    assert int(np.sum(sel.delivered_kw >= p_min_kw - 1e-6)) == steps


def test_max_power_peak_puts_everything_in_one_step() -> None:
    # asking 15 kW: step 1 can reach 4.275 (the battery's whole energy) + 4 + 3 = 11.275 kW
    sel = select(SelectionRequest([-15.0, -15.0], 1.0, "power_peak"), three())
    assert sel.objective_value == pytest.approx(11.275)
    assert sel.delivered_kw[0] == pytest.approx(11.275)


def test_min_cost_meets_the_request_and_counts_battery_losses() -> None:
    # 6 kW each step: C 4 kWh at 0.05, A 4.275 at 0.10 + losses 4.275 × (1/0.95 − 1) × 0.15 = 0.03375,
    # B the remaining 3.725 at 0.20: 0.2 + 0.4275 + 0.03375 + 0.745 = 1.40625 €
    sel = select(SelectionRequest([-6.0, -6.0], 1.0, "min_cost", loss_price_eur_per_kwh=0.15), three())
    assert sel.status == "full"
    assert sel.objective_value == pytest.approx(1.40625)
    # at 0.195 €/kWh the battery's losses (0.15 × 0.0526 = 0.0079 €/kWh) make it dearer than B (0.20):
    # B first (3 then 4 kW), the battery only for the 1 kW that step 2 still lacks (C 1 + B 4 = 5 < 6)
    dear = select(SelectionRequest([-6.0, -6.0], 1.0, "min_cost", loss_price_eur_per_kwh=0.15), three(0.195))
    assert kw(dear, "A", "bat") == [0.0, -1.0]
    assert kw(dear, "B", "load") == [-3.0, -4.0]
    assert dear.objective_value == pytest.approx(0.05 * 4 + 0.20 * 7 + 0.195 + 0.15 * (1 / 0.95 - 1))


def test_the_pyomo_statement_and_the_numpy_builder_agree_on_every_hand_case() -> None:
    cases = [
        SelectionRequest([-10.0, -10.0], 1.0, "flexibility"),
        SelectionRequest([-10.0, -10.0], 1.0, "financial", value_per_kwh=0.15),
        SelectionRequest([-10.0, -10.0], 1.0, "bid_length", bid_min_kw=8.5),
        SelectionRequest([-15.0, -15.0], 1.0, "power_peak"),
        SelectionRequest([-6.0, -6.0], 1.0, "min_cost", loss_price_eur_per_kwh=0.15),
    ]
    for request in cases:
        fast = select(request, three())
        stated = select(request, three(), options=SelectionOptions(builder="pyomo"))
        assert stated.objective_value == pytest.approx(fast.objective_value, abs=1e-6), request.objective
        assert stated.unmet_kw.sum() == pytest.approx(fast.unmet_kw.sum(), abs=1e-6), request.objective


def test_a_full_battery_does_not_absorb_power_by_charging_and_discharging_at_once() -> None:
    # Both at once would absorb c − d with c·0.95 = d/0.95 (SOC unchanged): e.g. 5 kW in, 4.51 out.
    full = Source("A", "bat", "battery", [5.0], [5.0],
                  battery=BatteryPhysics(10.0, 0.5, 10.0, eta_charge=0.95, eta_discharge=0.95))  # fmt: skip
    for builder in ("matrix", "pyomo"):
        sel = select(SelectionRequest([0.4], 1.0), [full], options=SelectionOptions(builder=builder))
        assert sel.status == "partial"
        assert sel.unmet_kw.tolist() == pytest.approx([0.4])
        assert kw(sel, "A", "bat") == [0.0]
        assert sel.route == "milp"  # the relaxation burns (z fractional): the MILP decides


def test_a_battery_gives_down_then_up_never_both_in_a_step() -> None:
    bat = Source("A", "bat", "battery", [5.0, 5.0], [5.0, 5.0],
                 battery=BatteryPhysics(5.0, 0.5, 10.0, eta_charge=0.95, eta_discharge=0.95))  # fmt: skip
    sel = select(SelectionRequest([-3.0, 3.0], 1.0), [bat])
    assert sel.route == "lp-certified"  # the relaxation never gives both at once here
    assert sel.status == "full"
    assert kw(sel, "A", "bat") == [-3.0, 3.0]


def test_an_infeasible_request_answers_partial_with_the_unmet_kw_of_each_step() -> None:
    sel = select(SelectionRequest([-10.0, -10.0], 1.0), [B, C])  # 7 then 5 kW available
    assert sel.route == "lp"  # no binaries at all
    assert sel.status == "partial"
    assert sel.unmet_kw.tolist() == pytest.approx([3.0, 5.0])
    assert sel.delivered_kw.tolist() == pytest.approx([7.0, 5.0])


def test_a_site_below_an_overloaded_feeder_is_skipped() -> None:
    cheap = Source("X", "pv", "pv", [0.0], [5.0], cost_eur_per_kwh=0.05)  # curtail PV: more load
    dear = Source("Y", "pv", "pv", [0.0], [5.0], cost_eur_per_kwh=0.10)
    request = SelectionRequest([5.0], 1.0, "min_cost")
    assert kw(select(request, [cheap, dear]), "X", "pv") == [5.0]  # the grid blind would pick X
    feeders = [
        Feeder("f1", frozenset({"X"}), increase_headroom_kw=[-2.0], reduce_headroom_kw=[10.0]),  # overloaded
        Feeder("f2", frozenset({"Y"}), increase_headroom_kw=[10.0], reduce_headroom_kw=[10.0]),
    ]
    sel = select(request, [cheap, dear], feeders=feeders)
    assert sel.status == "full"
    assert kw(sel, "X", "pv") == [0.0] and kw(sel, "Y", "pv") == [5.0]
    assert sel.sites == ["Y"]


def test_contract_limit_caps_a_site() -> None:
    sel = select(SelectionRequest([-10.0, -10.0], 1.0), [B, C], limits=[SiteLimit("B", 2.0)])
    assert sel.delivered_kw.tolist() == pytest.approx([5.0, 3.0])


@pytest.mark.parametrize(("partial", "unmet"), [(True, 0.0), (False, 2.0)], ids=["partial", "on-off"])
def test_partial_sources_give_a_share_on_off_sources_all_or_nothing(partial: bool, unmet: float) -> None:
    fan = Source("C", "fan", "fan", [3.0], [0.0], partial=partial)
    assert select(SelectionRequest([-2.0], 1.0), [fan]).unmet_kw.tolist() == pytest.approx([unmet])


def test_heat_pump_in_the_selection_matches_the_rc_model_over_three_hours() -> None:
    # flexmodels: zone 5 K/kW, 8 kWh/K at 21 °C, 0 °C outside, COP 3, band 20-24: 0.9226 kW for 3 h
    expected = heatpump_flex_kw(RcZone(5.0, 8.0, 0.3), t_now_c=21.0, t_out_c=0.0, cop=3.0, p_max_kw=9.0,
                                band=ComfortBand(20.0, 24.0), duration_h=3.0).reduce_kw  # fmt: skip
    hp = Source("H", "hp", "heatpump", [1.3], [7.7],
                zone=ZonePhysics(5.0, 8.0, cop=[3.0], t_base_c=[21.0], t_min_c=20.0, t_max_c=24.0))  # fmt: skip
    sel = select(SelectionRequest([-1.3], 3.0), [hp])
    assert sel.delivered_kw[0] == pytest.approx(expected, abs=1e-6)
    assert sel.unmet_kw[0] == pytest.approx(1.3 - expected, abs=1e-6)


def test_the_worked_battery_example_through_contract_and_selection() -> None:
    contract = Contract(site="A", program="peak", directions={"reduce"}, p_max_kw=20.0, events_per_day=1,
                        max_duration=timedelta(hours=1), soc_floor_pct=5.0)  # fmt: skip
    state = BatteryFlexState(capacity_kwh=10.0, soc_pct=50.0, soc_min_pct=0.0, eta_discharge=0.95)
    source = battery_source("bat", state, contract, n_steps=1)
    assert source.increase_max_kw.tolist() == [0.0]  # type: ignore[union-attr]
    sel = select(SelectionRequest([-10.0], 1.0), [source])
    assert sel.delivered_kw[0] == pytest.approx(10 * 0.45 * 0.95)  # 4.275 kW


@pytest.mark.parametrize(
    ("request_kw", "field"),
    [
        ({"target_kw": [-1.0], "dt_h": 1.0, "value_per_kwh": 3.0, "value_is_weight": True}, "value_per_kwh"),
        ({"target_kw": [-1.0], "dt_h": 0.0}, "dt_h"),
        ({"target_kw": [-1.0, -1.0], "dt_h": 1.0}, "reduce_max_kw"),
    ],
    ids=["weight-above-2.5", "dt", "shape"],
)
def test_bad_input_names_its_field(request_kw: dict[str, object], field: str) -> None:
    with pytest.raises(SelectionError, match=field):
        select(SelectionRequest(**request_kw), [Source("C", "fan", "fan", [3.0], [0.0])])  # type: ignore[arg-type]
