"""One period solved without HiGHS: every site's own optimum, certified, when no grid limit binds.

Why: the study solves 35,040 single periods a year and HiGHS pays a fixed cost per `run()`
over the whole LP (~0.45 ms on the study's region, docs/dispatch.md), even when nothing in
the grid binds, which is most of the year. Then the LP falls apart into one tiny LP per
site (import/export, PV curtailment, one battery, one heat pump with its thermal store),
and each of those is a one-dimensional market: at an electricity price lambda each device
draws a known amount (a step function of lambda with a range at its own price), and the
site's price is where the draws plus the site's base load meet its import or export.

Nothing here has to be trusted. For every site the answer comes with duals (lambda, the
heat price, the storage rows' duals) from a short list of candidates, and the KKT
conditions of the site's LP are checked: rows and bounds met, every reduced cost with the
sign its variable's position requires. A site that fails makes the whole period go to
HiGHS. If every site passes, the sites' answers solve R, the full LP without the grid's
rows (branch limits, voltage band, HV/MV thresholds); if the flows and voltages they give
(the exact linear network model) meet every one of those rows, the answer is feasible for
the full LP, which R relaxes, and so optimal for it with the same objective
(`decompose.py` uses the same argument per area).

Applies to single-period problems with at most one battery and one heat pump per site,
no generic units, no cost or bound on the slack bus (`SiteSolver.why_not`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from cloud_controller.dispatch.areas import subtree_matrix
from cloud_controller.dispatch.problem import FloatArray, Problem

PRIMAL_TOL = 1e-9  # kW or kWh: rows and bounds
DUAL_TOL = 1e-9  # cost units per kW: reduced-cost signs
GRID_TOL_KW = 1e-9  # a grid row may be missed by round-off only
GRID_TOL_PU = 1e-12


@dataclass
class SiteAnswer:
    """Per-site arrays (length n_sites) of one certified period, load-positive."""

    imp_kw: FloatArray
    exp_kw: FloatArray
    curt_kw: FloatArray
    ch_kw: FloatArray
    dis_kw: FloatArray
    e_bat_kwh: FloatArray
    hp_kw: FloatArray
    unmet_kw: FloatArray
    q_ch_kw: FloatArray
    q_dis_kw: FloatArray
    e_ts_kwh: FloatArray
    objective: float
    root_kw: float
    flows_kw: FloatArray  # (K,)
    v_pu: FloatArray  # (N,)


@dataclass
class StepData:
    """One period's inputs, already per site (what the engine reads from `StepInputs`)."""

    base_kw: FloatArray
    pv_max_kw: FloatArray  # curtailable PV per site (0 where there is none)
    heat_kw: FloatArray  # per site (0 without heat pump)
    hp_cap_kw: FloatArray  # per site
    cop: float
    c_import: FloatArray  # per site, per kWh
    bat_w_discharge: FloatArray  # per site
    ts_w_discharge: FloatArray  # per site
    e_bat0_kwh: FloatArray  # per site, state at the start of the period
    e_ts0_kwh: FloatArray  # per site, after the standing loss
    bat_p_max_kw: FloatArray  # per site
    bat_e_min_kwh: FloatArray
    bat_e_max_kwh: FloatArray
    bus_fixed_kw: FloatArray | None  # (N,)
    station_limit_kw: float
    station_feed_limit_kw: float


@dataclass
class _Devices:
    """What each device can draw this period (kW) and the prices where its draw steps."""

    a_ch: float
    a_dis: FloatArray
    ch_max: FloatArray
    dis_max: FloatArray
    c_curt: float
    pv_max: FloatArray
    lv0: FloatArray  # heat-pump draw while heat is worth less than the store's charge value
    lv1: FloatArray  # ... less than the store's discharge cost
    lv2: FloatArray  # ... less than the unmet-heat penalty
    t1: float  # those three prices in electricity terms (x COP)
    t2: FloatArray
    t3: float

    def draws(self, lam: FloatArray) -> tuple[FloatArray, ...]:
        """Each device's least and most draw (kW) at prices `lam` (m, S): step functions of the
        price, with the whole step as the range at the device's own price. Battery: charges
        below its charge value, discharges above its discharge cost. Curtailment (costs
        c_curt, draws what it curtails): only below -c_curt. Heat pump: the levels lv0-lv2."""
        c, d = -self.a_ch, self.a_dis
        b_hi = np.where(lam <= c, self.ch_max, np.where(lam <= d, 0.0, -self.dis_max))
        b_lo = np.where(lam < c, self.ch_max, np.where(lam < d, 0.0, -self.dis_max))
        c_hi = np.where(lam <= -self.c_curt, self.pv_max, 0.0)
        c_lo = np.where(lam < -self.c_curt, self.pv_max, 0.0)
        t1, t2, t3 = self.t1, self.t2, self.t3
        l0, l1, l2 = self.lv0, self.lv1, self.lv2
        h_hi = np.where(lam <= t1, l0, np.where(lam <= t2, l1, np.where(lam <= t3, l2, 0.0)))
        h_lo = np.where(lam < t1, l0, np.where(lam < t2, l1, np.where(lam < t3, l2, 0.0)))
        return b_lo, b_hi, c_lo, c_hi, h_lo, h_hi


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
        limited = np.isfinite(g.rating_kw) & p.enforce_branches
        # a branch may carry its rating plus round-off; unlimited ones anything
        self._rating = np.where(limited, g.rating_kw + GRID_TOL_KW, np.inf)
        self.v_max = g.v_max_pu + GRID_TOL_PU if p.enforce_voltage else None
        self.v_min = g.v_min_pu - GRID_TOL_PU if p.enforce_voltage else g.v_min_pu
        self._cols = np.arange(S)
        # bound templates of the 11 variables per site (rows set per step: PV, battery, HP):
        # imp, exp, curt, ch, dis, e_bat, hp, unmet, q_ch, q_dis, e_ts
        self._lo = np.zeros((11, S))
        self._hi = np.zeros((11, S))
        self._hi[0:2] = np.inf
        self._hi[7] = np.where(self.has_hp, np.inf, 0.0)
        self._hi[8:10] = np.where(self.has_ts, np.inf, 0.0)
        self._hi[10] = ts_max
        self.certified = 0
        self.declined = 0

    @staticmethod
    def why_not(problem: Problem) -> str | None:
        """Why the per-site path cannot answer `problem` (None if it can)."""
        p = problem
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
            self.declined += 1
            return None
        if not self._grid(x, ans):
            self.declined += 1
            return None
        self.certified += 1
        return ans

    def _sites(self, x: StepData) -> SiteAnswer | None:
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
        # candidate prices (8, S): the grid's two and every device's own
        cand = np.empty((8, self.n_sites))
        cand[0] = ce
        cand[1] = ci
        cand[2] = -self.c_curt
        cand[3] = -a_ch
        cand[4] = a_dis
        cand[5] = t1
        cand[6] = t2
        cand[7] = t3
        dev = _Devices(a_ch, a_dis, ch_max, dis_max, self.c_curt, x.pv_max_kw, lv0, lv1, lv2, t1, t2, t3)
        b_lo, b_hi, c_lo, c_hi, h_lo, h_hi = dev.draws(cand)
        net_lo = x.base_kw + b_lo + c_lo + h_lo
        net_hi = x.base_kw + b_hi + c_hi + h_hi
        # the site's price: import price if it may import, export price if it may export,
        # a device's own price if the draws can balance the site exactly there
        can_import = net_hi >= -PRIMAL_TOL
        can_export = net_lo <= PRIMAL_TOL
        ok = can_import & can_export & (cand > ce) & (cand < ci)
        ok[1] = can_import[1]
        ok[0] = can_export[0]
        found = ok.any(axis=0)
        if not found.all():
            return None
        j = ok.argmax(axis=0)
        cols = self._cols
        lam = cand[j, cols]
        bl, bh, cl, chh, hl, hh = (a[j, cols] for a in (b_lo, b_hi, c_lo, c_hi, h_lo, h_hi))
        lo = bl + cl + hl
        # share what the balance needs above the devices' least draws: battery, heat pump,
        # curtailment, in that order (any share is optimal at this price)
        rest = np.clip(-x.base_kw, lo, bh + chh + hh) - lo
        d_bat = bl + np.minimum(rest, bh - bl)
        rest = np.maximum(rest - (d_bat - bl), 0.0)
        hp = hl + np.minimum(rest, hh - hl)
        rest = np.maximum(rest - (hp - hl), 0.0)
        curt = cl + np.minimum(rest, chh - cl)
        net = x.base_kw + d_bat + hp + curt
        imp = np.maximum(net, 0.0)
        exp = np.maximum(-net, 0.0)
        ch = np.maximum(d_bat, 0.0)
        dis = np.maximum(-d_bat, 0.0)
        e_bat = e0 + eta_c * dt * ch - dt / eta_d * dis
        resid = heat - cop * hp
        q_ch = np.maximum(-resid, 0.0)
        q_dis = np.minimum(np.maximum(resid, 0.0), qdis_max)
        unmet = np.maximum(resid, 0.0) - q_dis
        e_ts = t0 + dt * (q_ch - q_dis)
        xs = np.vstack((imp, exp, curt, ch, dis, e_bat, hp, unmet, q_ch, q_dis, e_ts))
        if not self._kkt(x, lam, ci, a_dis, a_qdis, xs):
            return None
        objective = float(
            ci @ imp
            - ce * exp.sum()
            + self.c_curt * curt.sum()
            + a_ch * ch.sum()
            + a_dis @ dis
            + pen * unmet.sum()
            + a_qch * q_ch.sum()
            + a_qdis @ q_dis
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
            objective=objective,
            root_kw=0.0,
            flows_kw=np.zeros(0),
            v_pu=np.zeros(0),
        )

    def _kkt(  # noqa: PLR0917 (the step's prices, each an array)
        self,
        x: StepData,
        lam: FloatArray,
        ci: FloatArray,
        a_dis: FloatArray,
        a_qdis: FloatArray,
        xs: FloatArray,
    ) -> bool:
        """Optimality of each site's LP for the variables `xs` (11, S) (imp, exp, curt, ch, dis,
        e_bat, hp, unmet, q_ch, q_dis, e_ts): bounds met, and duals (lambda given; the storage rows' duals and the heat
        price from short candidate lists) under which every reduced cost has the sign its
        variable's position needs (>= 0 at the lower bound, <= 0 at the upper, 0 between)."""
        dt, eta_c, eta_d, cop = self.dt, self.eta_c, self.eta_d, x.cop
        tol = PRIMAL_TOL
        # The four rows hold by construction (each row's last variable is set from the
        # others above: net exchange, e_bat, unmet heat, e_ts); tests check them.
        # -- bounds -----------------------------------------------------------------------
        lo = self._lo
        hi = self._hi
        hi[2] = x.pv_max_kw
        hi[3] = hi[4] = x.bat_p_max_kw
        lo[5] = x.bat_e_min_kwh
        hi[5] = x.bat_e_max_kwh
        hi[6] = x.hp_cap_kw
        above = xs - lo
        below = hi - xs
        if above.min() < -tol or below.min() < -tol:
            return False
        up = above > tol  # may move down: reduced cost must not be positive
        dn = below > tol  # may move up: reduced cost must not be negative

        def bad(i: int | slice, rc: FloatArray) -> npt.NDArray[np.bool_]:
            out: npt.NDArray[np.bool_] = (up[i] & (rc > DUAL_TOL)) | (dn[i] & (rc < -DUAL_TOL))
            return out

        # -- grid exchange and curtailment: lambda alone ------------------------------------
        rc_e = np.vstack((ci - lam, lam - self.c_export, self.c_curt + lam))
        if bad(slice(0, 3), rc_e).any():
            return False
        # -- battery: one of three duals for its energy row -------------------------------
        a_ch = self.a_ch
        mu_b = np.vstack((np.zeros_like(lam), -(a_ch + lam) / (eta_c * dt), (a_dis - lam) * eta_d / dt))
        bat_bad = (
            bad(3, a_ch + lam + eta_c * dt * mu_b) | bad(4, a_dis - lam - dt / eta_d * mu_b) | bad(5, -mu_b)
        )
        if not (~bat_bad).any(axis=0).all():
            return False
        # -- heat pump and store: heat price (4) x store dual (3) candidates ---------------
        a_qch, pen = self.a_qch, self.pen_unmet
        lam_h = np.empty((4, 1, self.n_sites))
        lam_h[0] = pen
        lam_h[1] = lam / cop
        lam_h[2] = a_qdis
        lam_h[3] = -a_qch
        mu_t = np.empty((4, 3, self.n_sites))
        mu_t[:, 0] = 0.0
        mu_t[:, 1] = (a_qdis - lam_h[:, 0]) / dt
        mu_t[:, 2] = -(a_qch + lam_h[:, 0]) / dt
        heat_bad = (
            bad(6, lam - cop * lam_h)
            | bad(7, pen - lam_h)
            | bad(8, a_qch + lam_h + dt * mu_t)
            | bad(9, a_qdis - lam_h - dt * mu_t)
            | bad(10, -mu_t)
        )
        return bool((~heat_bad).reshape(12, -1).any(axis=0).all())

    def _grid(self, x: StepData, ans: SiteAnswer) -> bool:
        """Flows, voltages and slack power of the answer; True if no grid row is broken."""
        bus_kw: FloatArray = np.bincount(  # type: ignore[assignment]
            self.site_bus, weights=ans.imp_kw - ans.exp_kw, minlength=self.n_bus
        )
        if x.bus_fixed_kw is not None:
            bus_kw = bus_kw + x.bus_fixed_kw
        flows = self._d @ bus_kw
        root = float(bus_kw.sum())
        v = self.v_root - self._d_t @ (self.r_pu_per_kw * flows)
        ans.root_kw, ans.flows_kw, ans.v_pu = root, flows, v
        if root > x.station_limit_kw + GRID_TOL_KW or -root > x.station_feed_limit_kw + GRID_TOL_KW:
            return False
        if (np.abs(flows) > self._rating).any():
            return False
        return self.v_max is None or not ((v > self.v_max).any() or (v < self.v_min).any())
