"""A call's inputs per site for the site-by-site routes, and their answers as a `Schedule`."""

from __future__ import annotations

import numpy as np

from cloud_controller.dispatch.model.problem import (
    FloatArray,
    Problem,
    StepInputs,
    StorageState,
    branch_rating,
)
from cloud_controller.dispatch.model.schedule import Schedule, Violation
from cloud_controller.dispatch.routes.site_market import SiteAnswer, StepData

BatteryLimits = tuple[FloatArray, FloatArray, FloatArray]  # per battery: p_max_kw, e_min_kwh, e_max_kwh


def _limit(value: FloatArray | None) -> float:
    """A single period's HV/MV threshold as a float (inf when off or not a number)."""
    if value is None:
        return float("inf")
    v = float(np.asarray(value, float).reshape(-1)[0])
    return v if not np.isnan(v) else float("inf")


class SiteInputs:
    """Per-site arrays of what stays until changed (battery limits, default costs and caps)."""

    def __init__(self, problem: Problem, battery_limits: BatteryLimits) -> None:
        self.problem = problem
        self._hs = np.flatnonzero(problem.ts_e_max_kwh > 0).astype(np.int64)  # HPs with a store
        self.set_battery_limits(battery_limits)

    def set_battery_limits(self, limits: BatteryLimits) -> None:
        """Per-site arrays of what stays until changed: battery limits, default costs and caps."""
        self.battery_limits = limits
        p = self.problem
        w = p.weights
        S = p.n_sites
        pm, emin, emax = (np.zeros(S) for _ in range(3))
        pm[p.bat_site], emin[p.bat_site], emax[p.bat_site] = limits
        self._site_bat = (pm, emin, emax)
        self._site_hp_cap = np.zeros(S)
        self._site_hp_cap[p.hp_site] = p.hp_p_max_kw
        self._site_defaults = (
            np.full(S, w.c_import),
            np.full(S, w.bat_w_discharge),
            np.full(S, w.ts_w_discharge),
        )
        self._site_pv = np.zeros(S)
        self._site_pv[p.pv_sites] = 1.0
        self._site_ts = p.hp_site[self._hs]
        self._ts_keep = 1.0 - p.ts_loss_per_step

    def step_data(self, x: StepInputs, state: StorageState) -> StepData:
        """The period's inputs per site, for `sites.SiteSolver` (shapes as `LpSession.apply` reads them)."""
        p = self.problem
        S = p.n_sites
        base = np.asarray(x.base_kw, float).reshape(-1)
        if base.shape != (S,):
            raise ValueError(f"base_kw has {base.size} values, the problem has {S} sites")
        pv = (
            np.zeros(S)
            if x.pv_kw is None
            else np.maximum(np.asarray(x.pv_kw, float).reshape(-1), 0.0) * self._site_pv
        )
        c_imp, bat_wd, ts_wd = self._site_defaults
        if x.c_import is not None:
            c_imp = np.broadcast_to(np.asarray(x.c_import, float).reshape(-1), (S,))
        heat = np.zeros(S)
        hp_cap = self._site_hp_cap
        if p.n_hp:
            if x.heat_kw is not None:
                heat[p.hp_site] = np.asarray(x.heat_kw, float).reshape(-1)
            if x.hp_cap_frac is not None:
                hp_cap = np.zeros(S)
                hp_cap[p.hp_site] = np.asarray(x.hp_cap_frac, float).reshape(-1) * p.hp_p_max_kw
            if x.ts_w_discharge is not None:
                ts_wd = ts_wd.copy()
                ts_wd[p.hp_site] = np.asarray(x.ts_w_discharge, float).reshape(-1)
        e_bat0 = np.zeros(S)
        if p.n_bat:
            e_bat0[p.bat_site] = state.e_bat_kwh
            if x.bat_w_discharge is not None:
                bat_wd = bat_wd.copy()
                bat_wd[p.bat_site] = np.asarray(x.bat_w_discharge, float).reshape(-1)
        e_ts0 = np.zeros(S)
        if len(self._hs):
            e_ts0[self._site_ts] = self._ts_keep * np.asarray(state.e_ts_kwh, float)[self._hs]
        pm, emin, emax = self._site_bat
        rating = branch_rating(p, x)
        return StepData(
            base_kw=base,
            pv_max_kw=pv,
            heat_kw=heat,
            hp_cap_kw=hp_cap,
            cop=3.0 if x.cop is None else float(np.asarray(x.cop, float).reshape(-1)[0]),
            c_import=c_imp,
            bat_w_discharge=bat_wd,
            ts_w_discharge=ts_wd,
            e_bat0_kwh=e_bat0,
            e_ts0_kwh=e_ts0,
            bat_p_max_kw=pm,
            bat_e_min_kwh=emin,
            bat_e_max_kwh=emax,
            bus_fixed_kw=None if x.bus_fixed_kw is None else np.asarray(x.bus_fixed_kw, float).reshape(-1),
            station_limit_kw=_limit(x.station_limit_kw),
            station_feed_limit_kw=_limit(x.station_feed_limit_kw),
            branch_rating_kw=None if rating is None else rating[0],
        )

    def schedule(self, a: SiteAnswer) -> Schedule:
        """A certified per-site answer in the shape the LP's answers have."""
        p = self.problem
        bs, hs_ = p.bat_site, p.hp_site
        q_ts = np.zeros((1, p.n_hp))
        e_ts = np.zeros((1, p.n_hp))
        if len(self._hs):
            at = hs_[self._hs]
            q_ts[0, self._hs] = a.q_ch_kw[at] - a.q_dis_kw[at]
            e_ts[0, self._hs] = a.e_ts_kwh[at]
        ch = a.ch_kw[bs][None, :]
        dis = a.dis_kw[bs][None, :]
        return Schedule(
            p_site_kw=(a.imp_kw - a.exp_kw)[None, :],
            p_bat_kw=ch - dis,
            p_bat_ch_kw=ch,
            p_bat_dis_kw=dis,
            e_bat_kwh=a.e_bat_kwh[bs][None, :],
            p_hp_kw=a.hp_kw[hs_][None, :],
            q_ts_kw=q_ts,
            e_ts_kwh=e_ts,
            curtail_kw=a.curt_kw[None, :],
            p_unit_kw=np.zeros((1, 0)),
            p_root_kw=np.array([a.root_kw]),
            branch_flow_kw=a.flows_kw[None, :],
            v_pu=a.v_pu[None, :],
            objective=a.objective,
            violations=[]
            if a.unmet_kw.max(initial=0.0) <= 1e-6
            else [
                Violation("heat_unmet", f"hp:{k}", 0, float(u))
                for k, u in enumerate(a.unmet_kw[hs_].tolist())
                if u > 1e-6
            ],
        )
