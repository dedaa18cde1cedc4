"""One period solved without HiGHS: every site's own optimum, certified, when no grid limit binds.

Why: the study solves 35,040 single periods a year and HiGHS pays a fixed cost per `run()`
over the whole LP (docs/benchmarks.md), even when nothing in
the grid binds, which is most of the year. Then the LP falls apart into one tiny LP per
site (import/export, PV curtailment, one battery, one heat pump with its thermal store),
and each of those is a one-dimensional market: at an electricity price lambda each device
draws a known amount (a step function of lambda with a range at its own price), and the
site's price is where the draws plus the site's base load meet its import or export.

The construction is not trusted; a check decides. Each site's rows hold by construction
(every row's last variable is set from the others). The check covers the rest of the KKT
conditions of the site's LP: every value finite and within its bounds, and, with lambda as
the site row's dual, duals for the storage rows and the heat row exist under which every
reduced cost has the sign its variable's position requires (interval tests, `_kkt`). A
site that fails makes the whole period go to HiGHS. If every site passes, the sites'
answers solve R, the full LP without the grid's rows (branch limits, voltage band, HV/MV
thresholds); if the flows and voltages they give (the exact linear network model) break
none of those rows, the answer is feasible for the full LP, which R relaxes, and so
optimal for it with the same objective (`decompose.py` uses the same argument per area).

Applies to single-period problems with at most one battery and one heat pump per site,
no generic units, no cost or bound on the slack bus (`SiteSolver.why_not`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from cloud_controller.dispatch.areas.areas import subtree_matrix
from cloud_controller.dispatch.model.problem import FloatArray, IntArray, Problem
from cloud_controller.dispatch.routes.site_kkt import kkt_holds
from cloud_controller.dispatch.routes.site_market import (
    GRID_TOL_KW,
    GRID_TOL_PU,
    PRIMAL_TOL,
    Devices,
    Picked,
    SiteAnswer,
    StepData,
    market,
    market_same,
    same_prices,
)
from cloud_controller.dispatch.routes.threshold import clear_threshold

__all__ = ["SiteAnswer", "SiteSolver", "StepData"]


class SiteSolver:
    """Static maps of one `Problem`; `solve` answers a period or returns None."""

    def __init__(self, problem: Problem) -> None:
        p = problem
        self.problem = p
        g = p.grid
        S = p.n_sites
        self.n_sites = S
        self.bat_at = np.full(S, -1, dtype=np.int64)  # battery index of each site
        self.bat_at[p.bat_site] = np.arange(p.n_bat)
        self.hp_at = np.full(S, -1, dtype=np.int64)
        self.hp_at[p.hp_site] = np.arange(p.n_hp)
        self.has_bat = self.bat_at >= 0
        self.has_hp = self.hp_at >= 0
        ts_max = np.zeros(S)
        ts_max[p.hp_site] = p.ts_e_max_kwh
        self.ts_max_kwh = ts_max
        self.has_ts = ts_max > 0
        self.has_pv = np.zeros(S, dtype=bool)
        self.has_pv[p.pv_sites] = True
        w = p.weights
        dt = p.dt_h
        self.dt = dt
        self.eta_c, self.eta_d = p.bat_eta_c, p.bat_eta_d
        self.c_export = w.c_export * dt
        self.c_curt = w.c_curtail * dt
        self.a_ch = -w.bat_w_charge * p.bat_eta_c * dt
        self.pen_unmet = w.pen_heat_unmet * dt
        self.a_qch = -w.ts_w_charge * dt
        self.thr = w.c_throughput
        self.site_bus = p.site_bus
        self.n_bus = g.n_bus
        d_mat = subtree_matrix(g)
        # flows = D @ bus loads, voltages = v_root - D.T @ (r * flows); dense while small
        # (the station-level network: a product of a few hundred entries beats sparse's overhead)
        dense = g.n_branch * g.n_bus <= 200_000
        self._d: sp.csr_matrix | FloatArray = d_mat.toarray() if dense else d_mat
        self._d_t: sp.csr_matrix | FloatArray = d_mat.T.toarray() if dense else d_mat.T.tocsr()
        self.r_pu_per_kw = g.r_pu_per_kw
        self.v_root = g.v_root_pu
        self._limited = limited = np.isfinite(g.rating_kw) & p.enforce_branches
        # a branch may carry its rating plus round-off; unlimited ones anything
        self._rating = np.where(limited, g.rating_kw + GRID_TOL_KW, np.inf)
        self.v_max = g.v_max_pu + GRID_TOL_PU if p.enforce_voltage else None
        self.v_min = g.v_min_pu - GRID_TOL_PU if p.enforce_voltage else g.v_min_pu
        self.cols = np.arange(S)
        # sites in turns between their buses: the 1st site of every bus, then the 2nd, ...
        rank = np.zeros(S, dtype=np.int64)
        seen: dict[int, int] = {}
        for i, b in enumerate(p.site_bus.tolist()):
            rank[i] = seen.get(b, 0)
            seen[b] = rank[i] + 1
        self.fill_order = np.lexsort((p.site_bus, rank))
        self.pen_station = w.pen_station * dt  # the HV/MV threshold's price cannot exceed it
        self.zeros = np.zeros(S)
        # bound templates of the 11 variables per site (rows set per step: PV, battery, HP):
        # imp, exp, curt, ch, dis, e_bat, hp, unmet, q_ch, q_dis, e_ts
        self.lo_template = np.zeros((11, S))
        self.hi_template = np.zeros((11, S))
        self.hi_template[0:2] = np.inf
        self.hi_template[7] = np.where(self.has_hp, np.inf, 0.0)
        self.hi_template[8:10] = np.where(self.has_ts, np.inf, 0.0)
        self.hi_template[10] = ts_max
        self.certified = 0
        self.declined_by_site = 0  # a site outside the markets' shapes or failing its KKT check
        self.declined_by_grid = 0  # the sites' optimum would break a grid row (it binds)
        self.unchecked: SiteAnswer | None = None  # the last answer that broke a grid row

    @staticmethod
    def why_not(problem: Problem) -> str | None:
        """Why the per-site path cannot answer `problem` (None if it can)."""
        p = problem
        if p.n_sites == 0:
            return "no sites"
        if p.meshed:
            return "a meshed grid: branch flows are not the sums over a subtree"
        if p.horizon != 1:
            return "more than one period: storage couples the periods"
        if p.n_units:
            return "generic units with their own costs"
        if p.root_cost is not None or p.has_shed:
            return "a cost or bound on the slack bus couples every site"
        if len(np.unique(p.bat_site)) != p.n_bat or len(np.unique(p.hp_site)) != p.n_hp:
            return "a site with two batteries or two heat pumps"
        return None

    # -- the per-site markets ---------------------------------------------------------------
    def solve(self, x: StepData) -> SiteAnswer | None:
        """The period's optimum if every site's KKT check and every grid row pass, else None."""
        ans = self._sites(x)
        if ans is None:
            self.declined_by_site += 1
            return None
        if not self.grid_ok(x, ans):
            self.declined_by_grid += 1
            self.unchecked = ans
            return None
        self.certified += 1
        return ans

    def _market_same(
        self, base: FloatArray, dev: Devices, ce: float, same: tuple[float, float, float]
    ) -> tuple[FloatArray, ...] | None:
        """Each site's price and draws when all sites share their prices (`market_same`)."""
        return market_same(self, base, dev, ce, same)

    def clear_threshold(self, x: StepData) -> SiteAnswer | None:
        """The period's optimum when an HV/MV threshold binds and all sites share their prices.

        See `threshold.clear_threshold`; None when that cannot be certified.
        """
        return clear_threshold(self, x)

    def overloaded(self, x: StepData, ans: SiteAnswer) -> IntArray | None:
        """The branches `ans` overloads, if that is all it breaks.

        None if it also breaks an HV/MV threshold or a voltage band, or nothing is overloaded.
        """
        root, v = ans.root_kw, ans.v_pu
        if root > x.station_limit_kw + GRID_TOL_KW or -root > x.station_feed_limit_kw + GRID_TOL_KW:
            return None
        if self.v_max is not None and ((v > self.v_max).any() or (v < self.v_min).any()):
            return None
        over: IntArray = np.flatnonzero(np.abs(ans.flows_kw) > self.rating_of(x))
        return over if len(over) else None

    def rating_of(self, x: StepData) -> FloatArray:
        """What each branch may carry this period: its rating (the call's, else the grid's) plus round-off."""
        if x.branch_rating_kw is None:
            return self._rating
        out: FloatArray = np.where(self._limited, x.branch_rating_kw + GRID_TOL_KW, np.inf)
        return out

    @property
    def declined(self) -> int:
        """Periods the per-site answer alone could not answer.

        A site's check failed, or a grid row would break (the engine may still mend those, see
        `DispatchEngine._mend`).
        """
        return self.declined_by_site + self.declined_by_grid

    def _sites(self, x: StepData) -> SiteAnswer | None:
        m = self.prepare(x, 0.0)
        if m is None:
            return None
        return self.assemble(x, m, np.clip(-x.base_kw, m.d_lo, m.d_hi))

    def prepare(self, x: StepData, shift: float) -> Picked | None:
        """Each site's price and its devices' least/most draws there, with the grid's prices shifted.

        The grid's import and export prices are raised by `shift` (the HV/MV threshold's price,
        0 without one).
        """
        dt, eta_c, eta_d = self.dt, self.eta_c, self.eta_d
        cop = x.cop
        if not cop > 0:
            return None
        ce, a_ch, a_qch, pen = self.c_export, self.a_ch, self.a_qch, self.pen_unmet
        ci = x.c_import * dt
        a_dis = (x.bat_w_discharge / eta_d + self.thr) * dt
        a_qdis = (x.ts_w_discharge + self.thr) * dt
        e0, t0, heat = x.e_bat0_kwh, x.e_ts0_kwh, x.heat_kw
        room_kwh = x.bat_e_max_kwh - e0
        avail_kwh = e0 - x.bat_e_min_kwh
        ts_room_kwh = self.ts_max_kwh - t0
        # Outside the shapes the markets below assume (grid exchange that could pay both
        # ways, storage that could cycle, a state outside its window), HiGHS answers.
        if (
            ci.min() <= ce
            or (a_dis + a_ch)[self.has_bat].min(initial=1.0) <= 0.0
            or (a_qdis + a_qch)[self.has_ts].min(initial=1.0) <= 0.0
            or pen <= max(-a_qch, float(a_qdis.max()))
            or min(room_kwh.min(), avail_kwh.min(), t0.min(), ts_room_kwh.min()) < -PRIMAL_TOL
            or heat.min() < 0.0
        ):
            return None
        ch_max = np.minimum(x.bat_p_max_kw, np.maximum(room_kwh, 0.0) / (eta_c * dt))
        dis_max = np.minimum(x.bat_p_max_kw, np.maximum(avail_kwh, 0.0) * eta_d / dt)
        qch_max = np.maximum(ts_room_kwh, 0.0) / dt
        qdis_max = np.maximum(t0, 0.0) / dt
        hp_cap = x.hp_cap_kw
        # heat-pump draw in each heat regime (heat price = electricity price / COP):
        # below the store's charge value it also fills the store; below the store's
        # discharge cost it covers the demand; below the unmet-heat penalty what the store
        # cannot cover; above it nothing.
        lv0 = np.minimum(hp_cap, (heat + qch_max) / cop)
        lv1 = np.minimum(hp_cap, heat / cop)
        lv2 = np.minimum(hp_cap, np.maximum(heat - qdis_max, 0.0) / cop)
        t1, t2, t3 = -a_qch * cop, a_qdis * cop, pen * cop
        dev = Devices(a_ch, a_dis, ch_max, dis_max, self.c_curt, x.pv_max_kw, lv0, lv1, lv2, t1, t2, t3, cop)
        same = same_prices(self, ci, a_dis, a_qdis)
        picked = (
            self._market_same(x.base_kw, dev, ce + shift, (same[0] + shift, same[1], same[2]))
            if same
            else market(self, x, dev, ce + shift, ci + shift)
        )
        if picked is None:
            return None
        return Picked(shift, ci, a_dis, a_qdis, qdis_max, same is not None, dev, *picked)

    def assemble(self, x: StepData, m: Picked, d: FloatArray) -> SiteAnswer | None:
        """The site answer for total device draws `d`, checked.

        Each draw is within the draws at the site's price. None unless every site passes its
        KKT test at the shifted prices.
        """
        dt, eta_c, eta_d, cop = self.dt, self.eta_c, self.eta_d, x.cop
        ce, a_ch, a_qch, pen = self.c_export, self.a_ch, self.a_qch, self.pen_unmet
        ci, a_dis, a_qdis, qdis_max = m.ci, m.a_dis, m.a_qdis, m.qdis_max
        e0, t0, heat = x.e_bat0_kwh, x.e_ts0_kwh, x.heat_kw
        lam, bl, bh, cl, chh, hl, hh = m.lam, m.bl, m.bh, m.cl, m.chh, m.hl, m.hh
        # share what the balance needs above the devices' least draws: battery, heat pump,
        # curtailment, in that order (any share is optimal at this price)
        rest = d - m.d_lo
        d_bat = bl + np.minimum(rest, bh - bl)
        rest = np.maximum(rest - (d_bat - bl), 0.0)
        hp = hl + np.minimum(rest, hh - hl)
        rest = np.maximum(rest - (hp - hl), 0.0)
        curt = cl + np.minimum(rest, chh - cl)
        # the 11 variables as rows of one array (fresh each period: the answer keeps views)
        xs = np.empty((11, self.n_sites))
        imp, exp, xs_curt, ch, dis, e_bat, xs_hp, unmet, q_ch, q_dis, e_ts = xs
        xs_curt[:] = curt
        xs_hp[:] = hp
        net = x.base_kw + d_bat + hp + curt
        np.maximum(net, 0.0, out=imp)
        np.maximum(-net, 0.0, out=exp)
        np.maximum(d_bat, 0.0, out=ch)
        np.maximum(-d_bat, 0.0, out=dis)
        e_bat[:] = e0 + eta_c * dt * ch - dt / eta_d * dis
        resid = heat - cop * hp
        np.maximum(-resid, 0.0, out=q_ch)
        surplus = np.maximum(resid, 0.0)
        np.minimum(surplus, qdis_max, out=q_dis)
        np.subtract(surplus, q_dis, out=unmet)
        e_ts[:] = t0 + dt * (q_ch - q_dis)
        # a NaN or infinite input would slip through the comparisons of the check
        if not np.isfinite(xs).all() or not kkt_holds(self, x, lam, ci + m.shift, a_dis, a_qdis, xs, m.shift):
            return None
        site_cost = (
            ci * imp
            - ce * exp
            + self.c_curt * curt
            + a_ch * ch
            + a_dis * dis
            + pen * unmet
            + a_qch * q_ch
            + a_qdis * q_dis
        )
        return SiteAnswer(
            imp_kw=imp,
            exp_kw=exp,
            curt_kw=curt,
            ch_kw=ch,
            dis_kw=dis,
            e_bat_kwh=e_bat,
            hp_kw=hp,
            unmet_kw=unmet,
            q_ch_kw=q_ch,
            q_dis_kw=q_dis,
            e_ts_kwh=e_ts,
            objective=float(site_cost.sum()),
            site_cost=site_cost,
            root_kw=0.0,
            flows_kw=np.zeros(0),
            v_pu=np.zeros(0),
        )

    def grid_ok(self, x: StepData, ans: SiteAnswer) -> bool:
        """Flows, voltages and slack power of the answer (stored in it).

        True if no grid row of the full LP is broken beyond round-off.
        """
        bus_kw: FloatArray = np.bincount(  # type: ignore[assignment]
            self.site_bus, weights=ans.imp_kw - ans.exp_kw, minlength=self.n_bus
        )
        if x.bus_fixed_kw is not None:
            bus_kw = bus_kw + x.bus_fixed_kw
        flows = self._d @ bus_kw
        root = float(bus_kw.sum())
        v = self.v_root - self._d_t @ (self.r_pu_per_kw * flows)
        ans.root_kw, ans.flows_kw, ans.v_pu = root, flows, v
        if not np.isfinite(root) or not np.isfinite(ans.objective):  # NaN or infinite inputs
            return False
        if root > x.station_limit_kw + GRID_TOL_KW or -root > x.station_feed_limit_kw + GRID_TOL_KW:
            return False
        if (np.abs(flows) > self.rating_of(x)).any():
            return False
        return self.v_max is None or not ((v > self.v_max).any() or (v < self.v_min).any())
