"""GOPACS's rule in the clearing: grid rows for every other element, and the AC check of the orders.

GOPACS (the Dutch DSOs' and TSO's congestion platform): an order must solve the congestion
and must not cause congestion elsewhere. We make it probabilistic with our own forecast:
- **grid rows** (before the MILP): every branch on the path of an offer's sites, other than
  the congestion points being cleared, gets one row per ISP: Σ kW of reduction below it ≤
  its room for reverse flow at the risk level (`GridView.reverse_headroom_kw`). An offer's
  sensitivity to a branch is 1 when any of its sites is below it (the whole offer may come
  from that site: the conservative reading, since the book does not know the split); on a
  meshed or multi-feed grid the rows are PTDF rows per branch and direction (`meshed_rows`);
- **AC check** (after the MILP, before the orders go out): an AC power flow of the plan's
  median site powers, then of the same minus the orders (each order's kW split evenly over
  its offer's sites). A violation is an element over its limit after the orders *and*
  worse than before them (more than `tol_pct`), a bus outside the band and further out,
  or a power flow that did not converge. What the orders did not make worse is not theirs.

Pure except `pgm_power_flow`, which builds the power-grid-model copy of the region once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from cloud_controller.market.clearing import Clearing, ClearingOptions, GridRow, Order, clear
from cloud_controller.market.grid_view import FloatArray, GridView, PowerFlow, isp_start
from cloud_controller.market.products import FlexOffer, FlexRequest

if TYPE_CHECKING:
    from cloud_controller.grid import Region

__all__ = ["GridInputs", "ac_check_of", "clear_on_grid", "grid_inputs", "pgm_power_flow"]

#: An element's loading may rise this much (percentage points) on an order before it counts.
AC_TOL_PCT = 0.5
AC_TOL_PU = 1e-3


@dataclass(frozen=True)
class GridInputs:
    """What the clearing gets from the grid: sensitivities per offer, rows, offers it cannot judge."""

    sensitivity: dict[str, dict[str, float]]  # offer id -> branch id -> kW per kW of reduction
    rows: list[GridRow]
    refused: list[tuple[str, str]]  # (offer id, reason)
    #: offer id -> kW of relief at its congestion point per kW ordered (meshed grids; 1 where absent)
    cover_per_kw: dict[str, float] = field(default_factory=dict)


def grid_inputs(
    view: GridView,
    offers: Sequence[tuple[str, str, Sequence[str]]],
    congestion_points: Sequence[str],
    risk: float,
) -> GridInputs:
    """Rows for every branch under `offers` (offer id, congestion point, sites) but the congestion points.

    An offer whose sites are not in the grid view cannot be judged and is refused with the
    sites named (never ordered blind).
    """
    skip: set[str] = set()
    for cp in congestion_points:
        try:
            row, _ = view.branch(cp)
            skip.add(view.forecast.elements[row])
        except KeyError:
            skip.add(cp)
    if view.ptdf is not None:  # a meshed or multi-feed grid: PTDF rows in both directions
        from cloud_controller.market.meshed_rows import cover_per_kw, meshed_rows

        m_sens, m_rows, m_refused = meshed_rows(view, [(o, s) for o, _, s in offers], skip, risk)
        return GridInputs(m_sens, m_rows, m_refused, cover_per_kw(view, offers))
    sens: dict[str, dict[str, float]] = {}
    refused: list[tuple[str, str]] = []
    touched: set[str] = set()
    for offer_id, _, sites in offers:
        elements, unknown = view.elements_below(sites)
        if unknown or not sites:
            why = f"site(s) {', '.join(unknown)} not in the grid model" if unknown else "names no sites"
            refused.append((offer_id, f"grid: {why}: its effect on other elements is unknown"))
            continue
        mine = {e: 1.0 for e in sorted(elements - skip) if np.isfinite(_rating(view, e))}
        sens[offer_id] = mine
        touched.update(mine)
    # already over at the risk level: nothing may add to it (0, not a negative bound the MILP cannot meet)
    rows = [
        GridRow(e, {t: max(0.0, kw) for t, kw in view.reverse_headroom_kw(e, risk).items()})
        for e in sorted(touched)
    ]
    return GridInputs(sens, rows, refused)


def _rating(view: GridView, element: str) -> float:
    return float(view.grid.rating_kw[view.grid.branch_names.index(element)])


def ac_check_of(
    view: GridView, offer_sites: Mapping[str, Sequence[str]]
) -> Callable[[Sequence[Order]], list[str]]:
    """The clearing's `ac_check`: violations of the orders on the AC power flow of the median."""
    if view.power_flow is None:
        raise ValueError("the grid view has no power flow")
    flow: PowerFlow = view.power_flow

    def check(orders: Sequence[Order]) -> list[str]:
        isps = sorted({t for o in orders for t in o.kw})
        wanted = set(isps)
        rows = [i for i, t in enumerate(view.interval_starts) if isp_start(t) in wanted]
        missing = sorted(set(isps) - {isp_start(view.interval_starts[i]) for i in rows})
        out = [f"ISP {t.isoformat()} is outside the forecast: not checked, not sent" for t in missing]
        if not rows:
            return out
        reduction = view.site_reduction_kw(isps, [(offer_sites.get(o.offer_id, ()), o.kw) for o in orders])
        isp_col = {t: j for j, t in enumerate(isps)}
        before = view.p50_kw[rows]
        after = before - reduction[[isp_col[isp_start(view.interval_starts[i])] for i in rows]]
        load, vm = flow(np.vstack([before, after]))
        n = len(rows)
        starts = [view.interval_starts[i] for i in rows]
        return out + _violations(view, starts, load[:n], load[n:], vm[:n], vm[n:])

    return check


def _violations(
    view: GridView,
    starts: Sequence[datetime],
    load0: FloatArray,
    load1: FloatArray,
    vm0: FloatArray,
    vm1: FloatArray,
) -> list[str]:
    fc, grid = view.forecast, view.grid
    lo, hi = fc.options.v_band_pu
    by_id = {e: float(fc.limit_hi[i]) for i, e in enumerate(fc.elements)}
    limit = np.asarray([by_id.get(name, np.inf) for name in grid.branch_names])  # (K,)
    failed = ~(np.all(np.isfinite(load1), axis=1) & np.all(np.isfinite(vm1), axis=1))
    over = (load1 > limit) & (load1 > load0 + AC_TOL_PCT) & ~failed[:, None]
    out0 = np.maximum(np.maximum(lo - vm0, vm0 - hi), 0.0)
    out1 = np.maximum(lo - vm1, vm1 - hi)
    outside = (out1 > 0.0) & (out1 > out0 + AC_TOL_PU) & ~failed[:, None]
    out: list[str] = []
    for j, t in enumerate(starts):
        if failed[j]:
            out.append(f"{t.isoformat()}: the AC power flow with the orders did not converge")
            continue
        for k in np.flatnonzero(over[j]):
            out.append(
                f"{grid.branch_names[k]} at {t.isoformat()}: {load1[j, k]:.1f} % > {limit[k]:g} % "
                f"with the orders ({load0[j, k]:.1f} % without)"
            )
        for b in np.flatnonzero(outside[j]):
            out.append(
                f"bus:{int(grid.bus_ids[b])} at {t.isoformat()}: {vm1[j, b]:.3f} pu outside "
                f"{lo:g}-{hi:g} pu with the orders ({vm0[j, b]:.3f} pu without)"
            )
    return out


def pgm_power_flow(region: Region, site_households: Sequence[int]) -> PowerFlow:
    """An AC power flow of the fleet's site powers on the region (its own PGM model, built once here).

    Households outside the fleet are at 0 kW, as in the congestion forecast.
    """
    from cloud_controller.forecast.ac_batch import ElementPowerFlow

    pf = ElementPowerFlow(region.net, region.grid, region.site_load_idx)
    to_loads = np.zeros((len(site_households), pf.n_loads))
    to_loads[np.arange(len(site_households)), np.asarray(site_households, dtype=np.int64)] = 1.0

    def run(site_kw: FloatArray) -> tuple[FloatArray, FloatArray]:
        res = pf.run_elements(np.atleast_2d(site_kw) @ to_loads, threading=0)
        load, vm = res.branch_loading * 100.0, res.vm_pu
        if len(res.failed_steps):
            load[res.failed_steps] = np.nan
            vm[res.failed_steps] = np.nan
        return load, vm

    return run


def clear_on_grid(
    requests: Sequence[FlexRequest],
    offers: Sequence[FlexOffer],
    offer_sites: Mapping[str, Sequence[str]],
    *,
    now: datetime,
    options: ClearingOptions,
    view: GridView | None,
    risk: float,
) -> Clearing:
    """`clear` with the grid rows and the AC check of `view` (without a view: as the core alone).

    An AC violation trims before it blocks: each order is checked alone, the offers whose
    order alone breaks the grid are left out (refused, with the violation) and the market is
    cleared once more; if that clearing still fails its check, no order goes out
    (`ac_check_failed`, the violations reported).
    """
    if view is None:
        return clear(requests, offers, now=now, options=options)
    cps = [r.congestion_point for r in requests]
    gi = grid_inputs(
        view, [(o.offer_id, o.congestion_point, offer_sites.get(o.offer_id, ())) for o in offers], cps, risk
    )
    judged = {o for o, _ in gi.refused}
    usable = [replace(o, sensitivity=gi.sensitivity[o.offer_id]) for o in offers if o.offer_id not in judged]
    check = ac_check_of(view, offer_sites) if view.power_flow is not None else None
    cover = gi.cover_per_kw
    result = clear(
        requests, usable, now=now, grid_rows=gi.rows, options=options, ac_check=check, cover_per_kw=cover
    )
    refused = list(gi.refused)
    if result.status == "ac_check_failed" and check is not None:
        first = clear(requests, usable, now=now, grid_rows=gi.rows, options=options, cover_per_kw=cover)
        bad = {}
        for order in first.orders:
            alone = check([order])
            if alone:
                bad[order.offer_id] = alone[0]
        if bad:
            refused += [(o, f"ac_check: {why}") for o, why in sorted(bad.items())]
            kept = [o for o in usable if o.offer_id not in bad]
            result = clear(
                requests,
                kept,
                now=now,
                grid_rows=gi.rows,
                options=options,
                ac_check=check,
                cover_per_kw=cover,
            )
    return replace(result, refused=(*result.refused, *refused), grid_rows=len(gi.rows))
