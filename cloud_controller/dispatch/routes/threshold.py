"""Threshold pricing: a binding HV/MV threshold's dual as one price on every site's exchange."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cloud_controller.dispatch.model.problem import FloatArray
from cloud_controller.dispatch.routes.site_market import GRID_TOL_KW, Picked, SiteAnswer, StepData

if TYPE_CHECKING:
    from cloud_controller.dispatch.routes.sites import SiteSolver


def clear_threshold(sv: SiteSolver, x: StepData) -> SiteAnswer | None:
    """The period's optimum when an HV/MV threshold binds and all sites share their prices.

    The threshold's dual acts as a price added to every site's import and export
    price (positive for the load threshold, negative for the feed-in one), so the whole
    fleet is one market in that price. Between the device prices (shifted by the grid
    prices) every site's exchange is constant; at each of them some sites' exchange has
    a range. The price closest to zero (within the threshold's penalty) at which the
    fleet's exchange can meet the threshold is the threshold's price; the sites' ranges
    are then filled to meet it exactly. Certified like `solve`: every site's KKT test at
    the shifted prices; a nonzero price only with the threshold met with equality; the
    caller checks every grid row. None when any of that fails.
    """
    m = sv.prepare(x, 0.0)
    if m is None or not m.same:
        return None
    fixed = 0.0 if x.bus_fixed_kw is None else float(np.sum(x.bus_fixed_kw))
    lo_net, hi_net = exchange_range(sv, x, m)
    if lo_net.sum() + fixed > x.station_limit_kw + GRID_TOL_KW:
        sign, target = 1.0, x.station_limit_kw - fixed  # total exchange <= target
    elif hi_net.sum() + fixed < -x.station_feed_limit_kw - GRID_TOL_KW:
        sign, target = -1.0, -x.station_feed_limit_kw - fixed  # total exchange >= target
    else:
        return None  # no threshold binds here (the answer broke something else)
    dev = m.dev
    ci0, ce0 = float(m.ci[0]), sv.c_export
    own = [-sv.c_curt, -dev.a_ch, dev.t1, dev.t3]
    if sv.has_bat.any():
        own.append(float(m.a_dis[sv.has_bat][0]))
    if sv.has_ts.any():
        own.append(float(m.a_qdis[sv.has_ts][0]) * x.cop)
    steps = sorted({sign * (p - ci0) for p in own} | {sign * (p - ce0) for p in own})
    prices = [sign * v for v in steps if 0.0 < v <= sv.pen_station]

    def at(mu: float) -> tuple[Picked, FloatArray, FloatArray, bool] | None:
        """The market at threshold price mu, and whether the fleet can meet it there."""
        m_mu = sv.prepare(x, mu)
        if m_mu is None:
            return None
        lo, hi = exchange_range(sv, x, m_mu)
        meets = sign * (lo.sum() if sign > 0 else hi.sum()) <= sign * target + GRID_TOL_KW
        return m_mu, lo, hi, bool(meets)

    # the fleet's exchange moves monotonically with the price: the first candidate price
    # that meets the threshold, by bisection
    lo_i, hi_i = 0, len(prices)
    found: tuple[Picked, FloatArray, FloatArray, bool] | None = None
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
    # (`SiteSolver.fill_order`): the threshold's load then spreads over the stations. Measured in
    # the grid-aware study year: filling site after site in index order put it on one
    # station and raised AC losses (151 -> 938 AC violations); every site taking the
    # same share of its range drained all batteries alike and left less for the worst
    # peaks (energy over the limit 2,100 -> 3,190 kWh).
    need = target - float(lo_net.sum()) if sign > 0 else float(hi_net.sum()) - target
    order = sv.fill_order
    r = room[order]
    fill = np.zeros_like(room)
    fill[order] = np.clip(need - (np.cumsum(r) - r), 0.0, r)
    net = lo_net + fill if sign > 0 else hi_net - fill
    if need > float(room.sum()) + GRID_TOL_KW:
        return None
    ans = sv.assemble(x, m, net - x.base_kw)
    if ans is None:
        return None
    exchange = float((ans.imp_kw - ans.exp_kw).sum())
    if abs(exchange - target) > GRID_TOL_KW * (1.0 + abs(target)):
        return None  # a nonzero price needs the threshold met with equality
    return ans


def exchange_range(sv: SiteSolver, x: StepData, m: Picked) -> tuple[FloatArray, FloatArray]:
    """Each site's least and most grid exchange (import positive) at its price.

    It imports at the import price, exports at the export price, and balances exactly in
    between.
    """
    lo = x.base_kw + m.d_lo
    hi = x.base_kw + m.d_hi
    at_import = m.lam >= m.ci + m.shift
    at_export = m.lam <= sv.c_export + m.shift
    lo_net = np.where(at_import, np.maximum(lo, 0.0), np.where(at_export, lo, 0.0))
    hi_net = np.where(at_import, hi, np.where(at_export, np.minimum(hi, 0.0), 0.0))
    return lo_net, hi_net
