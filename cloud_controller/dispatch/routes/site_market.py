"""The per-site markets: one period's data per site, each device's draw at a price, each site's price.

What one period's data look like per site, what each device draws at a price, and each
site's price (the construction `sites.SiteSolver` checks).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cloud_controller.dispatch.model.problem import FloatArray

if TYPE_CHECKING:
    from cloud_controller.dispatch.routes.sites import SiteSolver

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
    branch_rating_kw: FloatArray | None = None  # (K,) this period's ratings; None = the grid's


@dataclass
class Devices:
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
        """Each device's least and most draw (kW) at prices `lam` (m, S).

        Step functions of the price, with the whole step as the range at the device's own price.
        Battery: charges below its charge value, discharges above its discharge cost. Curtailment
        (costs c_curt, draws what it curtails): only below -c_curt. Heat pump: the levels lv0-lv2.

        Most and least draw are the draws just below and just above the price (by PRICE_STEP,
        far below any gap between two devices' prices and far above round-off): one pass
        over both halves of a stacked array instead of two with different comparisons.
        """
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
        """Battery, curtailment and heat-pump draws at a price p that is none of theirs.

        For when every site has the same prices (a_dis, t2 as numbers): a choice of arrays, no
        arithmetic.
        """
        b = self.ch_max if p < -self.a_ch else (zeros if p < a_dis else -self.dis_max)
        c = self.pv_max if p < -self.c_curt else zeros
        h = self.lv0 if p < self.t1 else self.lv1 if p < t2 else self.lv2 if p < self.t3 else zeros
        return b, c, h


@dataclass
class Picked:
    """Each site's price and its devices' least/most draws there (one market pass)."""

    shift: float  # added to the import and export price (the HV/MV threshold's price)
    ci: FloatArray  # import cost per kW, unshifted
    a_dis: FloatArray
    a_qdis: FloatArray
    qdis_max: FloatArray
    same: bool  # every site has the same prices (the plateau pass was used)
    dev: Devices
    lam: FloatArray
    bl: FloatArray
    bh: FloatArray
    cl: FloatArray
    chh: FloatArray
    hl: FloatArray
    hh: FloatArray

    @property
    def d_lo(self) -> FloatArray:
        """Each site's least total device draw (battery + curtailment + heat pump)."""
        out: FloatArray = self.bl + self.cl + self.hl
        return out

    @property
    def d_hi(self) -> FloatArray:
        """Each site's most total device draw (battery + curtailment + heat pump)."""
        out: FloatArray = self.bh + self.chh + self.hh
        return out


def same_prices(
    sv: SiteSolver, ci: FloatArray, a_dis: FloatArray, a_qdis: FloatArray
) -> tuple[float, float, float] | None:
    """(import, battery discharge, store discharge) prices if every site has the same, else None.

    Sharing them is the usual case: costs change per period, not per site.
    """
    c0 = float(ci[0])
    if ci.min() != c0 or ci.max() != c0:
        return None
    d = a_dis[sv.has_bat]
    q = a_qdis[sv.has_ts]
    d0 = float(d[0]) if len(d) else 0.0
    q0 = float(q[0]) if len(q) else 0.0
    if len(d) and (d.min() != d0 or d.max() != d0):
        return None
    if len(q) and (q.min() != q0 or q.max() != q0):
        return None
    return c0, d0, q0


def market_same(
    sv: SiteSolver, base: FloatArray, dev: Devices, ce: float, same: tuple[float, float, float]
) -> tuple[FloatArray, ...] | None:
    """Each site's price and the devices' least/most draws there, when all sites share their prices.

    The device prices between the export and import price cut the price axis into
    plateaus on which every draw is constant; a site's net load falls from plateau to
    plateau, and its price is the edge where it turns from import to export (or the
    import/export price itself when it never does).
    """
    ci, a_dis, a_qdis = same
    t2 = a_qdis * dev.cop
    own = sorted({-sv.c_curt, -dev.a_ch, a_dis, dev.t1, t2, dev.t3})
    edges = [ce, *(p for p in own if ce < p < ci), ci]
    below = max((p for p in own if p < ce), default=ce - 1.0)
    above = min((p for p in own if p > ci), default=ci + 1.0)
    mids = [
        (below + ce) / 2,
        *((a + b) / 2 for a, b in itertools.pairwise(edges)),
        (ci + above) / 2,
    ]
    zeros = sv.zeros
    draws = [dev.at_price(p, a_dis, t2, zeros) for p in mids]
    b_pl = np.array([d[0] for d in draws])
    c_pl = np.array([d[1] for d in draws])
    h_pl = np.array([d[2] for d in draws])
    net = base + b_pl + c_pl + h_pl  # (plateaus, S), falling down the rows
    k = len(edges)
    n_pos = (net[1:k] > 0.0).sum(axis=0)  # inner plateaus where the site still imports
    cols = sv.cols
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


def market(
    sv: SiteSolver, x: StepData, dev: Devices, ce: float, ci: FloatArray
) -> tuple[FloatArray, ...] | None:
    """The same as `market_same` when sites have prices of their own.

    Every site's draws at each of eight candidate prices (the grid's two and every
    device's own).
    """
    cand = np.empty((8, sv.n_sites))
    cand[0] = ce
    cand[1] = ci
    cand[2] = -sv.c_curt
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
    cols = sv.cols
    return (cand[j, cols], *(a[j, cols] for a in (b_lo, b_hi, c_lo, c_hi, h_lo, h_hi)))
