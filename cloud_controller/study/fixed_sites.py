"""The per-step OPF without the households that have nothing to dispatch (`FixedSites`).

Why separate: deciding per step whether the small LP is exactly the full LP is a
self-contained argument about the problem's limits and the households' surplus; the OPF
loop (`runner.py`) only asks `exact[t]` and swaps the inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from cloud_controller.dispatch import Problem, StepInputs

FloatArray = npt.NDArray[np.float64]


@dataclass
class FixedSites:
    """The per-step OPF without the households that have nothing to dispatch.

    A household without battery and heat pump has one decision: curtail its PV. Curtailing
    costs (0.01/kWh) and earns nothing unless a limit on *feed-in* binds, so wherever no
    feed-in limit can bind its grid exchange is its net load, exactly. Such households then
    enter the LP as a fixed load on their bus, and the LP has 43 % fewer sites here.
    `exact[t]` holds that condition per step: no HV/MV feed-in limit, and on every limited
    branch the most any optimal dispatch could feed back within the rating. That most is the
    households' PV surplus; batteries add their full discharge only where exporting could
    pay, i.e. where the HV/MV load limit is set or a branch above another limited branch
    could be overloaded by load (a battery never discharges into the grid for nothing:
    discharging costs, exporting earns 0). Steps where it fails are solved with every
    household, as before.
    """

    problem: Problem
    flex: npt.NDArray[np.bool_]  # households in the small LP (battery or heat pump)
    bus_kw: FloatArray  # (T, n_bus) the others' net load per bus
    exact: npt.NDArray[np.bool_]  # (T,) the small LP is the full LP at this step

    @staticmethod
    def of(
        problem: Problem, base_kw: FloatArray, st_lim_kw: FloatArray, st_feed_kw: FloatArray
    ) -> FixedSites | None:
        """The LP for `problem` with the households that have nothing to dispatch fixed, or None."""
        p = problem
        g = p.grid
        w = p.weights
        flex = np.zeros(p.n_sites, dtype=bool)
        flex[p.bat_site] = True
        flex[p.hp_site] = True
        if flex.all() or w.c_curtail <= 0 or w.c_export < 0 or p.has_shed or p.n_units:
            return None
        n_t = base_kw.shape[0]
        bus_kw = np.zeros((n_t, g.n_bus))
        np.add.at(bus_kw.T, p.site_bus[~flex], base_kw[:, ~flex].T)

        def branch_sum(per_site: FloatArray) -> FloatArray:
            per_bus = np.zeros((n_t, g.n_bus))
            np.add.at(per_bus.T, p.site_bus, per_site.T)
            return g.branch_flows_kw(per_bus)  # (T, K): sum over each branch's subtree

        limited = np.isfinite(g.rating_kw) & p.enforce_branches
        rating = g.rating_kw[limited]
        surplus = np.maximum(-base_kw, 0.0)
        pv_back_ok = (branch_sum(surplus)[:, limited] <= rating).all(axis=1)
        with_bat = surplus.copy()
        with_bat[:, p.bat_site] += p.bat_p_max_kw[None, :]
        bat_back_ok = (branch_sum(with_bat)[:, limited] <= rating).all(axis=1)
        # branches above another limited branch, and the most load they could carry
        above = np.zeros(g.n_branch, dtype=bool)
        into = {int(c): k for k, c in enumerate(g.child)}
        for k in np.flatnonzero(limited):
            bus = int(g.parent[k])
            while bus in into:
                above[into[bus]] = True
                bus = int(g.parent[into[bus]])
        most_load = np.maximum(base_kw, 0.0)
        most_load[:, p.bat_site] += p.bat_p_max_kw[None, :]
        most_load[:, p.hp_site] += p.hp_p_max_kw[None, :]
        upper = above & limited
        load_ok = (branch_sum(most_load)[:, upper] <= g.rating_kw[upper]).all(axis=1)
        export_pays = np.isfinite(st_lim_kw) | ~load_ok
        exact = ~np.isfinite(st_feed_kw) & pv_back_ok & (bat_back_ok | ~export_pays)
        site_pv = None if p.site_pv is None else p.site_pv[flex]
        small = replace(
            p,
            site_bus=p.site_bus[flex],
            bat_site=np.searchsorted(np.flatnonzero(flex), p.bat_site),
            hp_site=np.searchsorted(np.flatnonzero(flex), p.hp_site),
            site_pv=site_pv,
        )
        return FixedSites(small, flex, bus_kw, exact)

    def inputs(self, x: StepInputs, t: int) -> StepInputs:
        """The step's inputs for the small LP (the others' load moved to their bus)."""
        return replace(
            x,
            base_kw=x.base_kw[:, self.flex],
            pv_kw=None if x.pv_kw is None else x.pv_kw[:, self.flex],
            bus_fixed_kw=self.bus_kw[t : t + 1],
        )
