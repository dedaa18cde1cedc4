"""One period solved without HiGHS: every site's own optimum, certified, when no grid limit binds.

Why: the study solves 35,040 single periods a year and HiGHS pays a fixed cost per `run()`
over the whole LP (~0.45 ms on the study's region, docs/dispatch.md), even when nothing in
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

import itertools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from cloud_controller.dispatch.areas import subtree_matrix
from cloud_controller.dispatch.problem import FloatArray, IntArray, Problem

PRIMAL_TOL = 1e-9  # kW or kWh: rows and bounds
DUAL_TOL = 1e-9  # cost units per kW: reduced-cost signs
PRICE_STEP = 1e-9  # relative: "just below / above" a price (devices' prices differ by far more)
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
    site_cost: FloatArray  # each site's share of the objective (of the per-site answer; mending leaves it)
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
    cop: float

    def draws(self, lam: FloatArray) -> tuple[FloatArray, ...]:
        """Each device's least and most draw (kW) at prices `lam` (m, S): step functions of the
        price, with the whole step as the range at the device's own price. Battery: charges
        below its charge value, discharges above its discharge cost. Curtailment (costs
        c_curt, draws what it curtails): only below -c_curt. Heat pump: the levels lv0-lv2.

        Most and least draw are the draws just below and just above the price (by PRICE_STEP,
        far below any gap between two devices' prices and far above round-off): one pass
        over both halves of a stacked array instead of two with different comparisons."""
        m = lam.shape[0]
        step = PRICE_STEP * (1.0 + np.abs(lam))
        both = np.concatenate((lam - step, lam + step))
        b = np.where(both < -self.a_ch, self.ch_max, np.where(both < self.a_dis, 0.0, -self.dis_max))
        c = np.where(both < -self.c_curt, self.pv_max, 0.0)
        h = np.where(
            both < self.t1,
            self.lv0,
            np.where(both < self.t2, self.lv1, np.where(both < self.t3, self.lv2, 0.0)),
        )
        return b[m:], b[:m], c[m:], c[:m], h[m:], h[:m]

    def at_price(self, p: float, a_dis: float, t2: float, zeros: FloatArray) -> tuple[FloatArray, ...]:
        """Battery, curtailment and heat-pump draws at a price p that is none of theirs, when
        every site has the same prices (a_dis, t2 as numbers): a choice of arrays, no arithmetic."""
        b = self.ch_max if p < -self.a_ch else (zeros if p < a_dis else -self.dis_max)
        c = self.pv_max if p < -self.c_curt else zeros
        h = self.lv0 if p < self.t1 else self.lv1 if p < t2 else self.lv2 if p < self.t3 else zeros
        return b, c, h


@dataclass
class _Picked:
    """Each site's price and its devices' least/most draws there (one market pass)."""

    shift: float  # added to the import and export price (the HV/MV threshold's price)
    ci: FloatArray  # import cost per kW, unshifted
    a_dis: FloatArray
    a_qdis: FloatArray
    qdis_max: FloatArray
    same: bool  # every site has the same prices (the plateau pass was used)
    dev: _Devices
    lam: FloatArray
    bl: FloatArray
    bh: FloatArray
    cl: FloatArray
    chh: FloatArray
    hl: FloatArray
    hh: FloatArray

    @property
    def d_lo(self) -> FloatArray:
        out: FloatArray = self.bl + self.cl + self.hl
        return out

    @property
    def d_hi(self) -> FloatArray:
        out: FloatArray = self.bh + self.chh + self.hh
        return out


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
        # sites in turns between their buses: the 1st site of every bus, then the 2nd, ...
        rank = np.zeros(S, dtype=np.int64)
        seen: dict[int, int] = {}
        for i, b in enumerate(p.site_bus.tolist()):
            rank[i] = seen.get(b, 0)
            seen[b] = rank[i] + 1
        self._fill_order = np.lexsort((p.site_bus, rank))
        self.pen_station = w.pen_station * dt  # the HV/MV threshold's price cannot exceed it
        self._zeros = np.zeros(S)
        # bound templates of the 11 variables per site (rows set per step: PV, battery, HP):
        # imp, exp, curt, ch, dis, e_bat, hp, unmet, q_ch, q_dis, e_ts
        self._lo = np.zeros((11, S))
        self._hi = np.zeros((11, S))
        self._hi[0:2] = np.inf
        self._hi[7] = np.where(self.has_hp, np.inf, 0.0)
        self._hi[8:10] = np.where(self.has_ts, np.inf, 0.0)
        self._hi[10] = ts_max
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

    def clear_threshold(self, x: StepData) -> SiteAnswer | None:
        """The period's optimum when an HV/MV threshold binds and all sites share their
        prices. The threshold's dual acts as a price added to every site's import and export
        price (positive for the load threshold, negative for the feed-in one), so the whole
        fleet is one market in that price. Between the device prices (shifted by the grid
        prices) every site's exchange is constant; at each of them some sites' exchange has
        a range. The price closest to zero (within the threshold's penalty) at which the
        fleet's exchange can meet the threshold is the threshold's price; the sites' ranges
        are then filled to meet it exactly. Certified like `solve`: every site's KKT test at
        the shifted prices; a nonzero price only with the threshold met with equality; the
        caller checks every grid row. None when any of that fails."""
        m = self._prepare(x, 0.0)
        if m is None or not m.same:
            return None
        fixed = 0.0 if x.bus_fixed_kw is None else float(np.sum(x.bus_fixed_kw))
        lo_net, hi_net = self._exchange_range(x, m)
        if lo_net.sum() + fixed > x.station_limit_kw + GRID_TOL_KW:
            sign, target = 1.0, x.station_limit_kw - fixed  # total exchange <= target
        elif hi_net.sum() + fixed < -x.station_feed_limit_kw - GRID_TOL_KW:
            sign, target = -1.0, -x.station_feed_limit_kw - fixed  # total exchange >= target
        else:
            return None  # no threshold binds here (the answer broke something else)
        dev = m.dev
        ci0, ce0 = float(m.ci[0]), self.c_export
        own = [-self.c_curt, -dev.a_ch, dev.t1, dev.t3]
        if self.has_bat.any():
            own.append(float(m.a_dis[self.has_bat][0]))
        if self.has_ts.any():
            own.append(float(m.a_qdis[self.has_ts][0]) * x.cop)
        steps = sorted({sign * (p - ci0) for p in own} | {sign * (p - ce0) for p in own})
        prices = [sign * v for v in steps if 0.0 < v <= self.pen_station]

        def at(mu: float) -> tuple[_Picked, FloatArray, FloatArray, bool] | None:
            """The market at threshold price mu, and whether the fleet can meet it there."""
            m_mu = self._prepare(x, mu)
            if m_mu is None:
                return None
            lo, hi = self._exchange_range(x, m_mu)
            meets = sign * (lo.sum() if sign > 0 else hi.sum()) <= sign * target + GRID_TOL_KW
            return m_mu, lo, hi, bool(meets)

        # the fleet's exchange moves monotonically with the price: the first candidate price
        # that meets the threshold, by bisection
        lo_i, hi_i = 0, len(prices)
        found: tuple[_Picked, FloatArray, FloatArray, bool] | None = None
        while lo_i < hi_i:
            mid = (lo_i + hi_i) // 2
            got = at(prices[mid])
            if got is None:
                return None
            if got[3]:
                found, hi_i = got, mid
            else:
                lo_i = mid + 1
        if found is None or lo_i >= len(prices):
            return None
        if found[0].shift != prices[lo_i]:
            found = at(prices[lo_i])
            if found is None:
                return None
        m, lo_net, hi_net, _ = found
        room = hi_net - lo_net
        # Where sites' ranges meet (a tie: equal cost) they are filled one after the other,
        # as a simplex vertex would be, in an order that takes turns between the buses
        # (`_fill_order`): the threshold's load then spreads over the stations. Measured in
        # the grid-aware study year: filling site after site in index order put it on one
        # station and raised AC losses (151 -> 938 AC violations); every site taking the
        # same share of its range drained all batteries alike and left less for the worst
        # peaks (energy over the limit 2,100 -> 3,190 kWh).
        need = target - float(lo_net.sum()) if sign > 0 else float(hi_net.sum()) - target
        order = self._fill_order
        r = room[order]
        fill = np.zeros_like(room)
        fill[order] = np.clip(need - (np.cumsum(r) - r), 0.0, r)
        net = lo_net + fill if sign > 0 else hi_net - fill
        if need > float(room.sum()) + GRID_TOL_KW:
            return None
        ans = self._assemble(x, m, net - x.base_kw)
        if ans is None:
            return None
        exchange = float((ans.imp_kw - ans.exp_kw).sum())
        if abs(exchange - target) > GRID_TOL_KW * (1.0 + abs(target)):
            return None  # a nonzero price needs the threshold met with equality
        return ans

    def _exchange_range(self, x: StepData, m: _Picked) -> tuple[FloatArray, FloatArray]:
        """Each site's least and most grid exchange (import positive) at its price: it imports
        at the import price, exports at the export price, and balances exactly in between."""
        lo = x.base_kw + m.d_lo
        hi = x.base_kw + m.d_hi
        at_import = m.lam >= m.ci + m.shift
        at_export = m.lam <= self.c_export + m.shift
        lo_net = np.where(at_import, np.maximum(lo, 0.0), np.where(at_export, lo, 0.0))
        hi_net = np.where(at_import, hi, np.where(at_export, np.minimum(hi, 0.0), 0.0))
        return lo_net, hi_net

    def overloaded(self, x: StepData, ans: SiteAnswer) -> IntArray | None:
        """The branches `ans` overloads, if that is all it breaks (None if it also breaks an
        HV/MV threshold or a voltage band, or nothing is overloaded)."""
        root, v = ans.root_kw, ans.v_pu
        if root > x.station_limit_kw + GRID_TOL_KW or -root > x.station_feed_limit_kw + GRID_TOL_KW:
            return None
        if self.v_max is not None and ((v > self.v_max).any() or (v < self.v_min).any()):
            return None
        over: IntArray = np.flatnonzero(np.abs(ans.flows_kw) > self._rating)
        return over if len(over) else None

    @property
    def declined(self) -> int:
        """Periods the per-site answer alone could not answer: a site's check failed, or a
        grid row would break (the engine may still mend those, see `DispatchEngine._mend`)."""
        return self.declined_by_site + self.declined_by_grid

    def _sites(self, x: StepData) -> SiteAnswer | None:
        m = self._prepare(x, 0.0)
        if m is None:
            return None
        return self._assemble(x, m, np.clip(-x.base_kw, m.d_lo, m.d_hi))

    def _prepare(self, x: StepData, shift: float) -> _Picked | None:
        """Each site's price and its devices' least/most draws there, with the grid's import
        and export prices raised by `shift` (the HV/MV threshold's price, 0 without one)."""
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
        dev = _Devices(a_ch, a_dis, ch_max, dis_max, self.c_curt, x.pv_max_kw, lv0, lv1, lv2, t1, t2, t3, cop)
        same = self._same_prices(ci, a_dis, a_qdis)
        picked = (
            self._market_same(x.base_kw, dev, ce + shift, (same[0] + shift, same[1], same[2]))
            if same
            else self._market(x, dev, ce + shift, ci + shift)
        )
        if picked is None:
            return None
        return _Picked(shift, ci, a_dis, a_qdis, qdis_max, same is not None, dev, *picked)

    def _assemble(self, x: StepData, m: _Picked, d: FloatArray) -> SiteAnswer | None:
        """The site answer for total device draws `d` (each within the draws at the site's
        price), checked: None unless every site passes its KKT test at the shifted prices."""
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
        if not np.isfinite(xs).all() or not self._kkt(x, lam, ci + m.shift, a_dis, a_qdis, xs, m.shift):
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

    def _same_prices(
        self, ci: FloatArray, a_dis: FloatArray, a_qdis: FloatArray
    ) -> tuple[float, float, float] | None:
        """(import, battery discharge, store discharge) prices if every site has the same
        (the usual case: costs change per period, not per site), else None."""
        c0 = float(ci[0])
        if ci.min() != c0 or ci.max() != c0:
            return None
        d = a_dis[self.has_bat]
        q = a_qdis[self.has_ts]
        d0 = float(d[0]) if len(d) else 0.0
        q0 = float(q[0]) if len(q) else 0.0
        if len(d) and (d.min() != d0 or d.max() != d0):
            return None
        if len(q) and (q.min() != q0 or q.max() != q0):
            return None
        return c0, d0, q0

    def _market_same(
        self, base: FloatArray, dev: _Devices, ce: float, same: tuple[float, float, float]
    ) -> tuple[FloatArray, ...] | None:
        """Each site's price and the devices' least/most draws there, when all sites share their
        prices. The device prices between the export and import price cut the price axis into
        plateaus on which every draw is constant; a site's net load falls from plateau to
        plateau, and its price is the edge where it turns from import to export (or the
        import/export price itself when it never does)."""
        ci, a_dis, a_qdis = same
        t2 = a_qdis * dev.cop
        own = sorted({-self.c_curt, -dev.a_ch, a_dis, dev.t1, t2, dev.t3})
        edges = [ce, *(p for p in own if ce < p < ci), ci]
        below = max((p for p in own if p < ce), default=ce - 1.0)
        above = min((p for p in own if p > ci), default=ci + 1.0)
        mids = [
            (below + ce) / 2,
            *((a + b) / 2 for a, b in itertools.pairwise(edges)),
            (ci + above) / 2,
        ]
        zeros = self._zeros
        draws = [dev.at_price(p, a_dis, t2, zeros) for p in mids]
        b_pl = np.array([d[0] for d in draws])
        c_pl = np.array([d[1] for d in draws])
        h_pl = np.array([d[2] for d in draws])
        net = base + b_pl + c_pl + h_pl  # (plateaus, S), falling down the rows
        k = len(edges)
        n_pos = (net[1:k] > 0.0).sum(axis=0)  # inner plateaus where the site still imports
        cols = self._cols
        hi_row, lo_row = n_pos, n_pos + 1
        lam = np.asarray(edges)[n_pos]
        return (
            lam,
            b_pl[lo_row, cols],
            b_pl[hi_row, cols],
            c_pl[lo_row, cols],
            c_pl[hi_row, cols],
            h_pl[lo_row, cols],
            h_pl[hi_row, cols],
        )

    def _market(self, x: StepData, dev: _Devices, ce: float, ci: FloatArray) -> tuple[FloatArray, ...] | None:
        """The same as `_market_same` when sites have prices of their own: every site's draws at
        each of eight candidate prices (the grid's two and every device's own)."""
        cand = np.empty((8, self.n_sites))
        cand[0] = ce
        cand[1] = ci
        cand[2] = -self.c_curt
        cand[3] = -dev.a_ch
        cand[4] = dev.a_dis
        cand[5] = dev.t1
        cand[6] = dev.t2
        cand[7] = dev.t3
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
        if not ok.any(axis=0).all():
            return None
        j = ok.argmax(axis=0)
        cols = self._cols
        return (cand[j, cols], *(a[j, cols] for a in (b_lo, b_hi, c_lo, c_hi, h_lo, h_hi)))

    def _kkt(  # noqa: PLR0917 (the step's prices, each an array)
        self,
        x: StepData,
        lam: FloatArray,
        ci: FloatArray,
        a_dis: FloatArray,
        a_qdis: FloatArray,
        xs: FloatArray,
        shift: float = 0.0,
    ) -> bool:
        """Optimality of each site's LP for the variables `xs` (11, S) (imp, exp, curt, ch, dis,
        e_bat, hp, unmet, q_ch, q_dis, e_ts): bounds met, and duals exist under which every
        reduced cost rc has the sign its variable's position needs (rc <= 0 where it may move
        down, rc >= 0 where it may move up, so 0 in between). lambda (the site row's dual) is
        given; each condition on the others is a bound on one unknown, so existence is an
        interval test: the battery row's dual mu_b; the heat price lam_h and s = lam_h + dt *
        mu_t (mu_t the store row's dual), whose difference the store's position bounds."""
        dt, eta_c, eta_d, cop = self.dt, self.eta_c, self.eta_d, x.cop
        tol, dtol = PRIMAL_TOL, DUAL_TOL
        inf = np.inf
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
        up = above > tol  # may move down
        dn = below > tol  # may move up
        # -- grid exchange and curtailment: lambda alone ------------------------------------
        rc = np.empty((3, self.n_sites))
        np.subtract(ci, lam, out=rc[0])
        np.subtract(lam, self.c_export + shift, out=rc[1])
        np.add(lam, self.c_curt, out=rc[2])
        if ((up[:3] & (rc > dtol)) | (dn[:3] & (rc < -dtol))).any():
            return False
        # -- battery: rc_ch = k_ch * mu_b - g_ch, rc_dis = g_dis - k_dis * mu_b, rc_e = -mu_b ----
        k_ch, k_dis = eta_c * dt, dt / eta_d
        g_ch = -(self.a_ch + lam)
        g_dis = a_dis - lam
        mu_hi = np.minimum(
            np.minimum(
                np.where(up[3], (g_ch + dtol) / k_ch, inf), np.where(dn[4], (g_dis + dtol) / k_dis, inf)
            ),
            np.where(dn[5], dtol, inf),
        )
        mu_lo = np.maximum(
            np.maximum(
                np.where(dn[3], (g_ch - dtol) / k_ch, -inf), np.where(up[4], (g_dis - dtol) / k_dis, -inf)
            ),
            np.where(up[5], -dtol, -inf),
        )
        if (mu_lo > mu_hi).any():
            return False
        # -- heat: rc_hp = lam - cop lam_h, rc_unmet = pen - lam_h, rc_qch = a_qch + s,
        #    rc_qdis = a_qdis - s, rc_e_ts = (lam_h - s) / dt ------------------------------
        pen = self.pen_unmet
        h_lo = np.maximum(np.where(up[6], (lam - dtol) / cop, -inf), np.where(up[7], pen - dtol, -inf))
        h_hi = np.minimum(np.where(dn[6], (lam + dtol) / cop, inf), np.where(dn[7], pen + dtol, inf))
        s_lo = np.maximum(np.where(dn[8], -self.a_qch - dtol, -inf), np.where(up[9], a_qdis - dtol, -inf))
        s_hi = np.minimum(np.where(up[8], -self.a_qch + dtol, inf), np.where(dn[9], a_qdis + dtol, inf))
        d_lo = np.where(up[10], -dt * dtol, -inf)  # bounds on s - lam_h
        d_hi = np.where(dn[10], dt * dtol, inf)
        return not (
            (h_lo > h_hi).any()
            or (s_lo > s_hi).any()
            or (s_lo - h_hi > d_hi).any()
            or (s_hi - h_lo < d_lo).any()
        )

    def grid_ok(self, x: StepData, ans: SiteAnswer) -> bool:
        """Flows, voltages and slack power of the answer (stored in it); True if no grid row
        of the full LP is broken beyond round-off."""
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
        if (np.abs(flows) > self._rating).any():
            return False
        return self.v_max is None or not ((v > self.v_max).any() or (v < self.v_min).any())
