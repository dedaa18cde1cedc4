"""Envelopes of the zone's assets from `flexmodels` (seed 003 §3.1-3.2): the AHU fan and the heat pump.

Pure functions of (site config, latest readings), called by `edge_agent.flex` per
interval length. Each bound is what the asset could sustain from now to the end of
the interval, the same reading as the battery's:

- AHU fan (an `hvac` asset that accepts `fan_speed_pct`, with the fan and air keys in
  its `model:`): down by `flexmodels.fan_reduce_kw` — the lowest speed that keeps CO2 at
  or below the zone's limit over the whole interval, dynamically (the room's air is a CO2
  store) — and up to full speed (more air never breaks the CO2 limit).
- Heat pump (an `hp` asset with `model.cop`, whose zone has `model.r_k_per_kw` and
  `model.c_kwh_per_k` and accepts `t_setpoint_c`): `flexmodels.heatpump_flex_kw`, the
  setpoint moved to the comfort band's edges through the zone's RC model and the COP.

Either returns None when the model keys or the readings it needs are missing: the caller
then falls back to the plain estimate, so a missing key narrows the envelope, never breaks it.
"""

from __future__ import annotations

from collections.abc import Mapping

from edge_agent.comfort_veto import comfort_limits
from edge_agent.config import AssetConfig, SiteConfig
from edge_agent.poller import Latest
from flexmodels import ComfortBand, FanZone, RcZone, fan_power_kw, fan_reduce_kw, heatpump_flex_kw

__all__ = ["fan_bounds", "heatpump_bounds", "zone_of"]

Bounds = list[tuple[float, float]]


def _good(latest: Mapping[str, Latest], asset: str, point: str | None) -> float | None:
    entry = latest.get(f"{asset}.{point}") if point is not None else None
    return entry.value if entry is not None and entry.quality != "bad" else None


def fan_bounds(
    asset: AssetConfig, latest: Mapping[str, Latest], durations_h: list[float]
) -> tuple[float, Bounds] | None:
    """(fan kW now, bounds per duration) of an AHU fan, or None without its model or readings."""
    m = asset.model
    if "fan_speed_pct" not in asset.controls or None in (
        m.volume_m3,
        m.co2_gen_m3_h,
        m.fan_flow_max_m3_h,
        m.fan_p_max_kw,
    ):
        return None
    assert m.volume_m3 and m.co2_gen_m3_h is not None and m.fan_flow_max_m3_h and m.fan_p_max_kw is not None
    zone = FanZone(m.volume_m3, m.co2_gen_m3_h, m.fan_flow_max_m3_h, m.fan_p_max_kw)
    limits = comfort_limits(asset)
    co2 = _good(latest, asset.id, limits.co2_point)
    pct = _good(latest, asset.id, asset.controls["fan_speed_pct"].point)
    if co2 is None or pct is None:
        return None
    s_now = min(max(pct / 100.0, 0.0), 1.0)
    p_now = fan_power_kw(zone, s_now)
    up = fan_power_kw(zone, 1.0) - p_now
    bounds = [
        (p_now - fan_reduce_kw(zone, co2, s_now, d, limit_ppm=limits.co2_max_ppm), p_now + up)
        for d in durations_h
    ]
    return p_now, bounds


def zone_of(site: SiteConfig, hp: AssetConfig) -> AssetConfig | None:
    """The `hvac` asset a heat pump heats: `model.zone`, else the site's one `hvac` asset."""
    zones = [a for a in site.assets if a.kind == "hvac"]
    if hp.model.zone is not None:
        return next((a for a in zones if a.id == hp.model.zone), None)
    return zones[0] if len(zones) == 1 else None


def heatpump_bounds(
    site: SiteConfig, hp: AssetConfig, latest: Mapping[str, Latest], durations_h: list[float]
) -> tuple[float, ComfortBand, Bounds] | None:
    """(base kW, band, bounds per duration) of a heat pump through its zone, or None without the model."""
    zone_asset = zone_of(site, hp)
    p_max = hp.limits.p_max_kw or hp.p_nominal_kw or hp.model.p_max_kw
    if zone_asset is None or hp.model.cop is None or not p_max or "t_setpoint_c" not in zone_asset.controls:
        return None
    zm = zone_asset.model
    if zm.r_k_per_kw is None or zm.c_kwh_per_k is None:
        return None
    rc = RcZone(zm.r_k_per_kw, zm.c_kwh_per_k, zm.gains_kw or 0.0)
    limits = comfort_limits(zone_asset)
    t_now = _good(latest, zone_asset.id, limits.t_point)
    t_out = _good(latest, zone_asset.id, "outdoor_t_c")
    if t_now is None or t_out is None:
        return None
    band = ComfortBand(limits.t_min_c, limits.t_max_c)
    bounds: Bounds = []
    p_base = 0.0
    for d in durations_h:
        f = heatpump_flex_kw(
            rc, t_now_c=t_now, t_out_c=t_out, cop=hp.model.cop, p_max_kw=p_max, band=band, duration_h=d
        )
        p_base = f.p_base_kw
        bounds.append((max(0.0, f.p_base_kw - f.reduce_kw), min(p_max, f.p_base_kw + f.increase_kw)))
    return p_base, band, bounds
