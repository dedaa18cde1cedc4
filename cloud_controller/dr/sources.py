"""From contracts and `flexmodels` to the selection's sources: one function per asset kind.

The contract's terms become the source's limits here, once: its directions (a direction
it does not offer has caps of 0), its SOC floor (the battery's E_min), its comfort band
(the zone's band, narrowed by the adaptive band if one is given), its CO2 limit (the
fan's safe reduction) and its price (the source's cost); its maximum kW is a `SiteLimit`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cloud_controller.dr.contracts import Contract
from cloud_controller.dr.problem import BatteryPhysics, FloatArray, SiteLimit, Source, ZonePhysics
from flexmodels import BatteryFlexState, ComfortBand, FanZone, RcZone, energy_at_start_kwh, fan_reduce_kw

__all__ = ["battery_source", "fan_source", "heatpump_source", "pv_source", "site_limit"]


def _caps(
    contract: Contract, reduce_kw: FloatArray, increase_kw: FloatArray
) -> tuple[FloatArray, FloatArray]:
    red = reduce_kw if "reduce" in contract.directions else np.zeros_like(reduce_kw)
    inc = increase_kw if "increase" in contract.directions else np.zeros_like(increase_kw)
    return np.maximum(red, 0.0), np.maximum(inc, 0.0)


def _price(contract: Contract) -> float:
    return contract.price_eur_per_kwh or 0.0


def site_limit(contract: Contract) -> SiteLimit:
    """The contract's maximum kW as the selection's per-site limit."""
    return SiteLimit(contract.site, contract.p_max_kw)


def battery_source(
    asset: str, state: BatteryFlexState, contract: Contract, *, n_steps: int, lead_h: float = 0.0
) -> Source:
    """A battery idle over the event, at its energy at the event start (eqs. 13-16's active state).

    The MILP is linear, so a power-dependent efficiency enters at its value at full power
    (the conservative end of the curve: the selection never promises the ~10 % that a
    rated constant η would overstate).
    """
    floor_pct = max(state.soc_min_pct, contract.soc_floor_pct)
    e_min = state.capacity_kwh * floor_pct / 100.0
    e_max = state.capacity_kwh * state.soc_max_pct / 100.0
    p_dis = min(state.p_discharge_max_kw, contract.p_max_kw)
    p_ch = min(state.p_charge_max_kw, contract.p_max_kw)
    red, inc = _caps(contract, np.full(n_steps, p_dis), np.full(n_steps, p_ch))
    return Source(
        site=contract.site,
        asset=asset,
        kind="battery",
        reduce_max_kw=red,
        increase_max_kw=inc,
        cost_eur_per_kwh=_price(contract),
        battery=BatteryPhysics(
            e_start_kwh=min(max(energy_at_start_kwh(state, lead_h), e_min), e_max),
            e_min_kwh=e_min,
            e_max_kwh=e_max,
            eta_charge=state.curve("charge").at(p_ch),
            eta_discharge=state.curve("discharge").at(p_dis),
        ),
    )


def heatpump_source(
    asset: str,
    zone: RcZone,
    contract: Contract,
    *,
    t_now_c: float,
    p_base_kw: Sequence[float] | FloatArray,
    p_max_kw: float,
    cop: Sequence[float] | FloatArray,
    band: ComfortBand | None = None,
) -> Source:
    """A heat pump holding its zone at `t_now_c` (its setpoint); the setpoint may move inside the band."""
    base = np.asarray(p_base_kw, dtype=np.float64)
    t_min = contract.comfort_t_min_c if band is None else max(contract.comfort_t_min_c, band.t_min_c)
    t_max = contract.comfort_t_max_c if band is None else min(contract.comfort_t_max_c, band.t_max_c)
    red, inc = _caps(contract, base, np.maximum(p_max_kw - base, 0.0))
    return Source(
        site=contract.site,
        asset=asset,
        kind="heatpump",
        reduce_max_kw=red,
        increase_max_kw=inc,
        cost_eur_per_kwh=_price(contract),
        zone=ZonePhysics(
            r_k_per_kw=zone.r_k_per_kw,
            c_kwh_per_k=zone.c_kwh_per_k,
            cop=np.asarray(cop, dtype=np.float64),
            t_base_c=np.full(base.size, t_now_c),
            t_min_c=t_min,
            t_max_c=max(t_max, t_min + 1e-6),
        ),
    )


def fan_source(
    asset: str,
    zone: FanZone,
    contract: Contract,
    *,
    co2_now_ppm: float,
    s_now: float,
    n_steps: int,
    dt_h: float,
) -> Source:
    """An AHU fan whose speed may drop for the whole event with CO2 ≤ the contract's limit throughout."""
    red_kw = fan_reduce_kw(zone, co2_now_ppm, s_now, n_steps * dt_h, limit_ppm=contract.co2_limit_ppm)
    red, inc = _caps(contract, np.full(n_steps, red_kw), np.zeros(n_steps))
    return Source(contract.site, asset, "fan", red, inc, cost_eur_per_kwh=_price(contract))


def pv_source(asset: str, contract: Contract, *, p_pv_kw: Sequence[float] | FloatArray) -> Source:
    """PV: controllable only by curtailment, so it can raise the site's load by up to its output."""
    pv = np.asarray(p_pv_kw, dtype=np.float64)
    red, inc = _caps(contract, np.zeros(pv.size), pv)
    return Source(contract.site, asset, "pv", red, inc, cost_eur_per_kwh=_price(contract))
