"""`GET /grid/state`: the estimated state of the grid from what the controller measures now.

What is metered today: each registered site's grid meter (active power, from ingest's latest
values; reactive power is a pseudo-value at the load's power factor). Everything else is a
pseudo-measurement: a registered site without a usable reading takes its forecast from the
last plan (p50 and σ); a household outside the fleet takes its pandapower load as p50 with
a wide σ (`OUTSIDE_FLEET_SIGMA_KW`), or, below a station whose meter gives the last plan a
background (`Plan.station_background`: the meter's P minus the fleet's sites, live/station_load.py),
an even share of that background (measured, else its forecast's first period) with the same
σ (how it splits between households is unknown); the HV/MV station's set-point (the ext_grid's vm_pu,
σ 1 %) is a pseudo voltage. Where a secondary substation's meter reports (site
`sub-<station>`, `protocols.assets.substation_site_id`), its P and Q are a transformer flow
measurement at the LV side and its L-N voltage one of the LV busbar, each with the σ of a
class 0.5 meter (`SUBSTATION_METER`, rated at the transformer); a reading older than the
policy's `max_age_s` or from an offline site is left out, one older than `stale_after_s`
has its σ widened. The response says all of this in `metered`, and `observability` says
what the real meters alone can and cannot see.

`live_measurements` is pure (snapshots in, a MeasurementBatch out); the route caches one
`StateEstimator` per region and runs the estimate in FastAPI's thread pool.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Query

from cloud_controller.grid.estimate import (
    EstimateOptions,
    LoadForecast,
    LoadReadings,
    MeasurementBatch,
    MeterClass,
    Observability,
    QualityPolicy,
    SensorSpec,
    StateEstimate,
    StateEstimator,
    VoltageSensors,
    load_sensors,
)
from cloud_controller.grid.estimate.measurements import FlowSensors, meter_sigma
from cloud_controller.live.station_plan import household_background
from protocols.assets import Points, substation_site_id

if TYPE_CHECKING:
    from cloud_controller.grid import Region
    from cloud_controller.live.types import Plan, SiteRef, SiteSnapshot
    from cloud_controller.service import CloudController

__all__ = [
    "OUTSIDE_FLEET_SIGMA_KW",
    "SUBSTATION_METER",
    "grid_state_router",
    "live_measurements",
    "state_view",
]

#: σ of a household the controller knows nothing about (no meter, no forecast), kW.
OUTSIDE_FLEET_SIGMA_KW = 1.5
#: A site grid meter: class 1 (IEC 62053-21), rated for a 35 A x 3 house connection.
SITE_METER = MeterClass(1.0, 0.05)
SITE_METER_RATED_KW = 24.0
HV_SETPOINT_SIGMA_PU = 0.01
#: A secondary substation's meter on its LV busbar: class 0.5 (IEC 62053-22), rated at the transformer.
SUBSTATION_METER = MeterClass(0.5, 0.01)


def _substation_sensors(
    region: Region, snapshots: Mapping[str, SiteSnapshot], now: datetime, policy: QualityPolicy
) -> tuple[list[tuple[int, float, float, str]], FlowSensors]:
    """Each reporting station meter as a flow (into the trafo at its LV side) and an LV busbar voltage."""
    net = region.net
    volts: list[tuple[int, float, float, str]] = []
    cols: list[tuple[str, float, float, float, float, str]] = []
    for station, k in region.station_branch.items():
        site = substation_site_id(station)
        snap = snapshots.get(site)
        p_kw = None if snap is None else snap.points.get(str(Points.METER_P_KW), snap.p_net_kw)
        if snap is None or p_kw is None or snap.mode == "offline":
            continue
        at = snap.measured_at or snap.last_seen
        age_s = (now - at).total_seconds() if at is not None else float("inf")
        if age_s > policy.max_age_s:
            continue
        widen = policy.stale_sigma_factor if age_s > policy.stale_after_s else 1.0
        name = region.grid.branch_names[k]
        trafo = int(name.split(":")[1])
        rated_kva = float(net.trafo.sn_mva.at[trafo]) * 1e3
        q_kvar = snap.points.get(str(Points.METER_Q_KVAR), 0.0)
        sigma_p = float(meter_sigma(p_kw, rated_kva, SUBSTATION_METER)) * widen
        sigma_q = float(meter_sigma(q_kvar, rated_kva, SUBSTATION_METER)) * widen
        # the meter reads into the LV network; the sensor wants power into the transformer
        cols.append((name, -p_kw, -q_kvar, sigma_p, sigma_q, f"substation:{site}"))
        v_ln = snap.points.get(str(Points.METER_V_LN_V))
        if v_ln is not None:
            bus = int(net.trafo.lv_bus.at[trafo])
            u_pu = v_ln / (float(net.bus.vn_kv.at[bus]) * 1e3 / np.sqrt(3.0))
            su = float(meter_sigma(u_pu, 1.0, SUBSTATION_METER)) * widen
            volts.append((bus, u_pu, su, f"substation:{site}"))
    to: tuple[Literal["to"], ...] = tuple("to" for _ in cols)
    vals = np.array([c[1:5] for c in cols], dtype=float).reshape(len(cols), 4)
    p, q, sp, sq = (vals[:, j][None, :] for j in range(4))  # one period: (1, n)
    return volts, FlowSensors(tuple(c[0] for c in cols), to, p, q, sp, sq, tuple(c[5] for c in cols))


def _outside_fleet_from_stations(
    region: Region, sites: Sequence[SiteRef], plan: Plan | None, p50_kw: np.ndarray
) -> int:
    """Put each metered station's background on its households outside the fleet (in place); how many."""
    if plan is None or not plan.station_background:
        return 0
    now_kw = {
        st: np.array([bg.measured.background_kw if bg.measured.background_kw is not None else bg.p50_kw[0]])
        for st, bg in plan.station_background.items()
        if bg.method != "none"
    }
    fleet = [int(s.region_site) for s in sites]
    share, shared = household_background(region.site_station, fleet, now_kw)
    fleet_set = set(fleet)
    idx = [
        h
        for h in range(min(len(p50_kw), len(region.site_station)))
        if h not in fleet_set and shared.get(region.site_station[h], 0) > 0
    ]
    p50_kw[idx] = share[0, idx]
    return len(idx)


def live_measurements(
    region: Region,
    sites: Sequence[SiteRef],
    snapshots: Mapping[str, SiteSnapshot],
    plan: Plan | None,
    now: datetime,
    *,
    policy: QualityPolicy | None = None,
) -> tuple[MeasurementBatch, dict[str, Any]]:
    """One period's measurements of the region from the site snapshots and the last plan's forecast."""
    net = region.net
    load_idx = np.asarray(region.site_load_idx, dtype=np.int64)
    n = len(load_idx)
    loads = net.load.loc[load_idx]
    scaling = loads.scaling.to_numpy(dtype=float) if "scaling" in loads.columns else np.ones(n)
    p50 = loads.p_mw.to_numpy(dtype=float) * scaling * 1e3
    sigma = np.full(n, OUTSIDE_FLEET_SIGMA_KW)
    reading = np.full(n, np.nan)
    age = np.zeros(n)
    quality = np.full(n, "good", dtype=object)
    site_of = [""] * n
    from_station = _outside_fleet_from_stations(region, sites, plan, p50)
    fc = None if plan is None or plan.site_forecast_kw is None else np.asarray(plan.site_forecast_kw, float)
    fs = None if plan is None or plan.site_sigma_kw is None else np.asarray(plan.site_sigma_kw, float)
    for i, ref in enumerate(sites):
        h = int(ref.region_site)
        if not 0 <= h < n:
            continue
        site_of[h] = ref.site
        if fc is not None and fs is not None and fc.ndim == 2 and i < fc.shape[1]:
            p50[h], sigma[h] = float(fc[0, i]), float(np.broadcast_to(fs, fc.shape)[0, i])
        snap = snapshots.get(ref.site)
        if snap is None or snap.p_net_kw is None:
            continue
        reading[h] = snap.p_net_kw
        at = snap.measured_at or snap.last_seen
        age[h] = (now - at).total_seconds() if at is not None else np.inf
        if snap.mode == "offline":
            quality[h] = "stale"
    half = 1.2815515655446004 * np.maximum(sigma, 0.0)
    cos_phi = loads.cos_phi.fillna(0.95).to_numpy(dtype=float) if "cos_phi" in loads.columns else 0.95
    ls = load_sensors(
        load_idx,
        LoadReadings(reading[None, :], quality=quality.astype(str)[None, :], age_s=age[None, :]),
        LoadForecast((p50 - half)[None, :], p50[None, :], (p50 + half)[None, :]),
        SensorSpec(SITE_METER, SITE_METER_RATED_KW, policy or QualityPolicy(), cos_phi),
        site=site_of,
    )
    eg = net.ext_grid[net.ext_grid.in_service.astype(bool)]
    hv = int(eg.bus.iloc[0])
    sub_volts, flows = _substation_sensors(region, snapshots, now, policy or QualityPolicy())
    volts = [(hv, float(eg.vm_pu.iloc[0]), HV_SETPOINT_SIGMA_PU, "pseudo:ext_grid set-point"), *sub_volts]
    volt = VoltageSensors(
        np.array([v[0] for v in volts], dtype=np.int64),
        np.array([[v[1] for v in volts]]),
        np.array([[v[2] for v in volts]]),
        tuple(v[3] for v in volts),
    )
    n_metered = int(ls.metered.sum())
    n_sub = len(flows.branch)
    metered = {
        "site_meters": n_metered,
        "registered_sites": len(sites),
        "households": n,
        "metered_share": n_metered / n if n else 0.0,
        "pseudo_from_forecast": int(sum(1 for s in site_of if s)) - n_metered,
        "pseudo_outside_fleet": n - int(sum(1 for s in site_of if s)),
        "pseudo_outside_fleet_from_station_meters": from_station,
        "substation_meters": n_sub,
        "voltage": (
            f"{len(sub_volts)} substation meters at LV busbars, and the HV/MV set-point as a pseudo-value"
            if sub_volts
            else "pseudo: the HV/MV station's set-point (no substation meter reports)"
        ),
        "reactive_power": "pseudo: each load's power factor",
    }
    return MeasurementBatch(volt, ls, flows), metered


def _num(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 6)


def state_view(
    region: Region, est: StateEstimator, res: StateEstimate, obs: Observability, metered: dict[str, Any]
) -> dict[str, Any]:
    """The JSON of `/grid/state` (loadings in % of rating, voltages in pu, powers load-positive kW)."""
    net = region.net
    vsig = res.vm_sigma_pu[0] if res.vm_sigma_pu is not None else np.full(len(res.bus_idx), np.nan)
    lsig = (
        res.line_loading_sigma[0]
        if res.line_loading_sigma is not None
        else np.full(len(res.line_idx), np.nan)
    )
    tsig = (
        res.trafo_loading_sigma[0]
        if res.trafo_loading_sigma is not None
        else np.full(len(res.trafo_names), np.nan)
    )
    trafos = []
    for k, name in enumerate(res.trafo_names):
        idx = int(name.split(":")[1])
        trafos.append(
            {
                "trafo": name,
                "name": str(net.trafo.name.at[idx]),
                "loading_pct": _num(100 * res.trafo_loading[0, k]),
                "loading_sigma_pct": _num(100 * tsig[k]),
                "p_lv_kw": _num(res.trafo_p_lv_kw[0, k]),
            }
        )
    vm = res.vm_pu[0]
    return {
        "converged": bool(res.converged[0]),
        "metered": metered,
        "chi2": {
            "value": _num(res.chi2[0]),
            "threshold": _num(res.chi2_threshold[0]),
            "failed": bool(res.chi2_failed[0]),
        },
        "bad_data": [
            {
                "sensor": b.sensor,
                "label": b.label,
                "measured": b.measured,
                "estimated": b.estimated,
                "normalised_residual": b.normalised_residual,
                "replaced_by": b.replaced_by,
            }
            for b in res.bad_data
        ],
        "observability": {
            "observable_from_meters": obs.observable,
            "rank_deficiency": obs.rank_deficiency,
            "islands": len(obs.islands),
            "unobservable_buses": list(obs.unobservable_buses),
            "suggested_meters": [
                {
                    "kind": s.kind,
                    "bus": s.bus,
                    "branch": s.branch,
                    "branches_determined": s.branches_determined,
                }
                for s in obs.suggestions
            ],
            "note": "from real meters alone; the estimate itself also uses the pseudo-measurements",
        },
        "v_min_pu": _num(np.nanmin(vm)) if len(vm) else None,
        "v_max_pu": _num(np.nanmax(vm)) if len(vm) else None,
        "transformers": trafos,
        "buses": [
            {"bus": int(b), "vm_pu": _num(vm[k]), "vm_sigma_pu": _num(vsig[k])}
            for k, b in enumerate(res.bus_idx)
        ],
        "lines": [
            {
                "line": int(ln),
                "loading_pct": _num(100 * res.line_loading[0, k]),
                "loading_sigma_pct": _num(100 * lsig[k]),
            }
            for k, ln in enumerate(res.line_idx)
        ],
    }


def grid_state_router(controller: CloudController) -> APIRouter:
    """`GET /grid/state` over `controller` (the planner's region, ingest's latest readings)."""
    router = APIRouter(tags=["grid"])
    cache: dict[int, StateEstimator] = {}
    lock = threading.Lock()

    @router.get("/grid/state")
    def grid_state(
        max_suggestions: Annotated[int, Query(ge=0, le=500)] = 20,
    ) -> dict[str, Any]:
        """Estimated state now: per bus voltage and σ, per line / transformer loading and σ, bad data removed.

        Also what is metered (`metered`) and whether the real meters alone make the grid observable,
        with up to `max_suggestions` meters that would (`observability`).
        """
        region = getattr(controller.built_planner, "region", None)
        if region is None:
            raise HTTPException(503, "no grid model yet: the planner is built with the first plan")
        mb, metered = live_measurements(
            region,
            controller.registry.sites,
            {**controller.snapshots, **getattr(controller, "meter_snapshots", {})},  # + grid meters (sub-*)
            controller.last_plan,
            controller.clock.now(),
        )
        with lock:
            est = cache.get(id(region))
            if est is None:
                est = cache[id(region)] = StateEstimator(region.net)
            res = est.estimate(mb, EstimateOptions(with_sigma=True))
            obs = est.observability(mb, max_suggestions=max_suggestions)
        return state_view(region, est, res, obs, metered)

    return router
