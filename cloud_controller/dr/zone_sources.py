"""Heat-pump and AHU-fan sources from the sites' published envelopes, and their BMS values per step.

Why from the envelope: the edge agent models its zone with `flexmodels` (RC zone + COP for
the heat pump, the dynamic CO2 balance for the fan; `edge_agent.flex_zone`) and publishes
the bounds in its retained `FlexEnvelope`; the cloud does not hold the zone's R, C, air
volume or CO2 generation. So the selection takes the edge's numbers and only narrows them
to the contract's terms:

- **the interval**: an envelope interval's bounds are what the asset can sustain from the
  envelope's time to that interval's end, so the source's cap is the first interval ending
  at or after the request's end (the last one, with a note, when the event ends beyond
  the envelope's horizon). The same cap holds every step: conservative, never more.
- **heat pump** (an `hp` entry with a comfort band and its measured kW, on a site with one
  registered `hvac` zone): base = its measured kW clipped into the bounds; reduce = base − p_min, increase =
  p_max − base. The envelope's bounds move the setpoint from its value now (the zone's
  `t_setpoint_c`, else `zone_t_c`, else the band's middle) to the band's edges; the
  contract's comfort band narrows the edges and the cap in proportion (linear in the
  setpoint: an approximation of the RC model, whose flexibility grows with the setpoint
  step). Its command is `t_setpoint_c` on the zone: t_now − |kW|/reduce_env·(t_now −
  t_min_env) when reducing, likewise up to t_max when increasing.
- **AHU fan** (an `hvac` entry with bounds around its fan power): reduce = p_now − p_min
  (the edge's speed floor keeping CO2 ≤ its limit for the whole interval), increase =
  p_max − p_now (full speed). A contract CO2 limit below the edge's (`EDGE_CO2_LIMIT_PPM`)
  scales the reduction by the share of the CO2 margin left, (limit − CO2 now)/(edge
  limit − CO2 now): with the fan slowed the room fills at a nearly constant rate, so the
  time to the limit is about linear in the margin. Its command is `fan_speed_pct`
  = 100·∛((p_now + signed kW)/p_max), the fan's cube law P = P_max·s³.

Pure: envelope, points and contract in; `Source`s and per-step values out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from cloud_controller.dr.contracts import Contract
from cloud_controller.dr.problem import Source
from cloud_controller.live.types import SiteRef
from protocols.messages import AssetFlex, FlexEnvelope

__all__ = ["EDGE_CO2_LIMIT_PPM", "ZoneSource", "fan_speeds_pct", "setpoints_c", "zone_sources"]

#: The CO2 limit the edge's fan envelope holds (CIBSE Guide B2; `edge_agent.comfort_veto`'s default).
EDGE_CO2_LIMIT_PPM = 1000.0
_EPS = 1e-9


@dataclass(frozen=True)
class ZoneSource:
    """A heat-pump or fan source with what its per-step BMS value needs."""

    source: Source
    command_asset: str  # the asset the BMS write goes to (the zone for a heat pump)
    p_now_kw: float
    #: heat pump: setpoint now and the envelope's band edges; fan: full-speed kW
    t_now_c: float = 0.0
    t_min_env_c: float = 0.0
    t_max_env_c: float = 0.0
    reduce_env_kw: float = 0.0
    increase_env_kw: float = 0.0
    p_full_kw: float = 0.0
    note: str | None = None


def _bounds(entry: AssetFlex, end: datetime) -> tuple[float, float, str | None]:
    """(p_min, p_max) sustained to `end`: the first interval ending at or after it."""
    for iv in entry.intervals:
        if iv.end >= end:
            return iv.p_min_kw, iv.p_max_kw, None
    last = entry.intervals[-1]
    note = f"{entry.asset}: the event ends after its envelope ({last.end.isoformat()}); its last bound taken"
    return last.p_min_kw, last.p_max_kw, note


def _caps(contract: Contract, red: float, inc: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    r = max(red, 0.0) if "reduce" in contract.directions else 0.0
    i = max(inc, 0.0) if "increase" in contract.directions else 0.0
    return np.full(n, r), np.full(n, i)


def _share(span_contract: float, span_env: float) -> float:
    return 0.0 if span_env <= _EPS else min(max(span_contract / span_env, 0.0), 1.0)


def _heatpump(
    entry: AssetFlex, zone: str, contract: Contract, points: Mapping[str, float], end: datetime, n: int
) -> ZoneSource | None:
    if entry.t_min_c is None or entry.t_max_c is None or entry.p_now_kw is None or not entry.intervals:
        return None  # without its measured kW the bounds' base is unknown: no source rather than a guess
    lo, hi, note = _bounds(entry, end)
    base = min(max(entry.p_now_kw, lo), hi)
    t_now = points.get(f"{zone}/t_setpoint_c", points.get(f"{zone}/zone_t_c"))
    if t_now is None:
        t_now = (entry.t_min_c + entry.t_max_c) / 2.0
    t_now = min(max(float(t_now), entry.t_min_c), entry.t_max_c)
    t_lo = max(entry.t_min_c, contract.comfort_t_min_c)
    t_hi = min(entry.t_max_c, contract.comfort_t_max_c)
    red_env, inc_env = base - lo, hi - base
    red = red_env * _share(t_now - t_lo, t_now - entry.t_min_c)
    inc = inc_env * _share(t_hi - t_now, entry.t_max_c - t_now)
    r, i = _caps(contract, red, inc, n)
    src = Source(
        contract.site, entry.asset, "heatpump", r, i, cost_eur_per_kwh=contract.price_eur_per_kwh or 0.0
    )
    return ZoneSource(src, zone, base, t_now, entry.t_min_c, entry.t_max_c, red_env, inc_env, note=note)


def _fan(
    entry: AssetFlex, contract: Contract, points: Mapping[str, float], end: datetime, n: int
) -> ZoneSource | None:
    if entry.p_now_kw is None or not entry.intervals:
        return None
    lo, hi, note = _bounds(entry, end)
    p_now = min(max(entry.p_now_kw, lo), hi)
    if hi <= _EPS:
        return None
    red = p_now - lo
    if contract.co2_limit_ppm < EDGE_CO2_LIMIT_PPM:
        co2 = points.get(f"{entry.asset}/co2_ppm")
        margin = 0.0 if co2 is None else _share(contract.co2_limit_ppm - co2, EDGE_CO2_LIMIT_PPM - co2)
        red *= margin
    r, i = _caps(contract, red, hi - p_now, n)
    src = Source(contract.site, entry.asset, "fan", r, i, cost_eur_per_kwh=contract.price_eur_per_kwh or 0.0)
    return ZoneSource(src, entry.asset, p_now, p_full_kw=hi, note=note)


def zone_sources(
    contract: Contract,
    envelope: FlexEnvelope | None,
    site: SiteRef | None,
    points: Mapping[str, float],
    *,
    end: datetime,
    n_steps: int,
) -> list[ZoneSource]:
    """The site's heat-pump and fan sources under `contract`; those with no flexibility either way are left out."""
    if envelope is None:
        return []
    zones = [a.asset for a in site.assets if a.kind == "hvac"] if site is not None else []
    out: list[ZoneSource] = []
    for entry in envelope.assets:
        zs: ZoneSource | None = None
        if entry.kind == "hp" and len(zones) == 1:
            zs = _heatpump(entry, zones[0], contract, points, end, n_steps)
        elif entry.kind == "hvac":
            zs = _fan(entry, contract, points, end, n_steps)
        if zs is not None and (np.any(zs.source.reduce_max_kw) or np.any(zs.source.increase_max_kw)):
            out.append(zs)
    return out


def setpoints_c(zs: ZoneSource, kw: Sequence[float]) -> list[float]:
    """The zone setpoint per step for the heat pump's signed kW (reduce < 0), 0.01 °C."""
    out = []
    for v in kw:
        if v < 0 and zs.reduce_env_kw > _EPS:
            t = zs.t_now_c - (-v / zs.reduce_env_kw) * (zs.t_now_c - zs.t_min_env_c)
        elif v > 0 and zs.increase_env_kw > _EPS:
            t = zs.t_now_c + (v / zs.increase_env_kw) * (zs.t_max_env_c - zs.t_now_c)
        else:
            t = zs.t_now_c
        out.append(round(min(max(t, zs.t_min_env_c), zs.t_max_env_c), 2))
    return out


def fan_speeds_pct(zs: ZoneSource, kw: Sequence[float]) -> list[float]:
    """The fan speed per step for the fan's signed kW, from P = P_full·s³, 0.1 %."""
    return [
        round(100.0 * float(np.cbrt(min(max(zs.p_now_kw + v, 0.0), zs.p_full_kw) / zs.p_full_kw)), 1)
        for v in kw
    ]
