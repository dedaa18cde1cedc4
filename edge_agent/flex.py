"""Local flexibility estimate: per asset, power bounds over the next hours from the measured state.

Pure functions of (asset config, latest readings, now). Measured inputs are the asset's
points named `p_kw` (power, load-positive) and `soc_pct` (battery); the model
parameters come from the asset's `model:` block (O'Connell & Keane 2021: battery SOC
bookkeeping with separate charge/discharge efficiencies; the heat pump through its zone's
RC model and COP and the AHU fan through the zone's CO2, both `flexmodels`, in
`edge_agent.flex_zone`). Each interval's bounds are what the asset could sustain for that
whole interval starting from the state measured now.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from edge_agent.comfort_veto import comfort_limits
from edge_agent.config import AssetConfig, SiteConfig
from edge_agent.flex_zone import fan_bounds, heatpump_bounds
from edge_agent.poller import Latest
from protocols.messages import AssetFlex, FlexInterval

__all__ = ["asset_flex", "flex_signature"]

HORIZON_H = 4
STEP_H = 1.0


def _value(asset: AssetConfig, latest: Mapping[str, Latest], name: str) -> float | None:
    entry = latest.get(f"{asset.id}.{name}")
    return entry.value if entry is not None and entry.quality != "bad" else None


def _intervals(now: datetime, bounds: list[tuple[float, float]]) -> list[FlexInterval]:
    start = now.replace(microsecond=0)
    out = []
    for i, (a, b) in enumerate(bounds):
        lo, hi = round(min(a, b), 3), round(max(a, b), 3)
        out.append(
            FlexInterval(
                start=start + timedelta(hours=i * STEP_H),
                end=start + timedelta(hours=(i + 1) * STEP_H),
                p_min_kw=lo,
                p_max_kw=hi,
            )
        )
    return out


def asset_flex(
    asset: AssetConfig, latest: Mapping[str, Latest], now: datetime, site: SiteConfig | None = None
) -> AssetFlex:
    """One asset's envelope; assets without a model get p_now as both bounds.

    With the `site` (the heat pump's zone is another asset), a heat pump and an AHU fan
    with their `flexmodels` keys get the zone models' envelopes (`edge_agent.flex_zone`).
    """
    p_now = _value(asset, latest, "p_kw")
    m, lim = asset.model, asset.limits
    p_max = lim.p_max_kw if lim.p_max_kw is not None else (asset.p_nominal_kw or m.p_max_kw or 0.0)
    n = int(HORIZON_H / STEP_H)
    durations = [(i + 1) * STEP_H for i in range(n)]
    hp = heatpump_bounds(site, asset, latest, durations) if site is not None and asset.kind == "hp" else None
    if hp is not None:
        _, band, bounds = hp
        return AssetFlex(
            asset=asset.id,
            kind=asset.kind,
            p_now_kw=p_now,
            p_guaranteed_min_kw=asset.guaranteed_min_kw or 0.0,
            t_min_c=band.t_min_c,
            t_max_c=band.t_max_c,
            intervals=_intervals(now, bounds),
        )
    fan = fan_bounds(asset, latest, durations) if asset.kind == "hvac" else None
    if fan is not None:
        limits = comfort_limits(asset)
        return AssetFlex(
            asset=asset.id,
            kind=asset.kind,
            p_now_kw=round(fan[0], 4),
            t_min_c=limits.t_min_c,
            t_max_c=limits.t_max_c,
            intervals=_intervals(now, fan[1]),
        )
    if asset.kind == "battery":
        soc = _value(asset, latest, "soc_pct")
        p_min = lim.p_min_kw if lim.p_min_kw is not None else -p_max
        if m.capacity_kwh is None or soc is None:
            return AssetFlex(
                asset=asset.id,
                kind=asset.kind,
                p_now_kw=p_now,
                intervals=_intervals(now, [(p_min, p_max)] * n),
            )
        cap = m.capacity_kwh
        soc_lo, soc_hi = m.soc_min_pct or 0.0, m.soc_max_pct if m.soc_max_pct is not None else 100.0
        eta_c, eta_d = m.eta_charge or 1.0, m.eta_discharge or 1.0
        e_now = cap * soc / 100.0
        e_min, e_max = cap * soc_lo / 100.0, cap * soc_hi / 100.0
        bounds = []
        for i in range(n):
            dt_h = (i + 1) * STEP_H  # sustained from now to the end of interval i
            room = max(0.0, e_max - e_now)
            avail = max(0.0, e_now - e_min)
            bounds.append((max(p_min, -avail * eta_d / dt_h), min(p_max, room / (eta_c * dt_h))))
        return AssetFlex(
            asset=asset.id,
            kind=asset.kind,
            p_now_kw=p_now,
            e_now_kwh=round(e_now, 3),
            e_min_kwh=e_min,
            e_max_kwh=e_max,
            soc_pct=min(max(soc, 0.0), 100.0),
            intervals=_intervals(now, bounds),
        )
    if asset.kind in ("ev", "hp"):
        floor = asset.guaranteed_min_kw or 0.0
        p = max(p_now or 0.0, 0.0)
        lo = min(p, floor)  # can be limited down to the §14a floor, not below
        return AssetFlex(
            asset=asset.id,
            kind=asset.kind,
            p_now_kw=p_now,
            p_guaranteed_min_kw=floor,
            t_min_c=m.t_min_c,
            t_max_c=m.t_max_c,
            intervals=_intervals(now, [(lo, max(p, lo))] * n),
        )
    if asset.kind == "pv":
        p = min(p_now or 0.0, 0.0)  # generation is negative; curtailment moves it towards 0
        return AssetFlex(
            asset=asset.id, kind=asset.kind, p_now_kw=p_now, intervals=_intervals(now, [(p, 0.0)] * n)
        )
    p = p_now or 0.0
    return AssetFlex(
        asset=asset.id,
        kind=asset.kind,
        p_now_kw=p_now,
        t_min_c=m.t_min_c,
        t_max_c=m.t_max_c,
        intervals=_intervals(now, [(p, p)] * n),
    )


def flex_signature(flex: list[AssetFlex]) -> tuple[object, ...]:
    """What must change for a new envelope to be worth publishing (times excluded, rounded)."""
    return tuple(
        (
            f.asset,
            None if f.p_now_kw is None else round(f.p_now_kw, 1),
            None if f.soc_pct is None else round(f.soc_pct),
            tuple((round(i.p_min_kw, 1), round(i.p_max_kw, 1)) for i in f.intervals),
        )
        for f in flex
    )
