"""The schedule in an LP answer: column values gathered into the `Schedule` arrays."""

from __future__ import annotations

import numpy as np

from cloud_controller.dispatch.model.lp import LpIndex
from cloud_controller.dispatch.model.problem import FloatArray, IntArray, Problem
from cloud_controller.dispatch.model.schedule import Schedule, Violation


class ScheduleReader:
    """Static gathers of one LP: the schedule's columns and the soft limits' slacks."""

    def __init__(self, problem: Problem, lp_problem: Problem, ix: LpIndex) -> None:
        """Set up the gathers of `problem` over the LP index `ix`.

        `lp_problem` is the problem the LP was built from (gridless with lazy grid rows):
        the slacks' names are of its own grid rows.
        """
        p = problem
        g = lp_problem.grid
        self.problem = p
        self.ix = ix
        self.hs = np.flatnonzero(p.ts_e_max_kwh > 0).astype(np.int64)  # HPs with a store
        # Soft-limit slacks, read in one gather per call to report violations.
        slack: list[tuple[str, IntArray, tuple[str, ...]]] = [
            ("station_load", ix.c_sst[:, None], ("hv/mv",)),
            ("station_feed", ix.c_sstf[:, None], ("hv/mv",)),
            ("branch", ix.c_sup, g.branch_names),
            ("branch", ix.c_sdn, g.branch_names),
            ("voltage_high", ix.c_svu, tuple(str(b) for b in g.bus_ids)),
            ("voltage_low", ix.c_svd, tuple(str(b) for b in g.bus_ids)),
            ("heat_unmet", ix.c_unmet, tuple(f"hp:{k}" for k in range(p.n_hp))),
            ("shed", ix.c_shed, tuple(f"site:{s}" for s in range(p.n_sites))),
        ]
        cols_l: list[IntArray] = []
        kind_l: list[str] = []
        elem_l: list[str] = []
        t_l: list[IntArray] = []
        for kind, idx, names in slack:
            tt, jj = np.nonzero(idx >= 0)
            cols_l.append(idx[tt, jj])
            kind_l.extend([kind] * len(tt))
            elem_l.extend(names[j] for j in jj)
            t_l.append(tt)
        self._slack_cols = np.concatenate(cols_l) if cols_l else np.zeros(0, np.int64)
        self._slack_kind = kind_l
        self._slack_elem = elem_l
        self._slack_t = np.concatenate(t_l) if t_l else np.zeros(0, np.int64)

    def read(self, x: FloatArray, objective: float) -> Schedule:
        """The schedule of column values `x` (the LP's own columns first)."""
        p = self.problem
        ix = self.ix
        T = p.horizon
        xe = np.append(x, 0.0)  # index -1 (an entry that does not exist) reads 0

        q_ts = np.zeros((T, p.n_hp))
        e_ts = np.zeros((T, p.n_hp))
        if len(self.hs):
            q_ts[:, self.hs] = xe[ix.c_qch] - xe[ix.c_qdis]
            e_ts[:, self.hs] = xe[ix.c_ets]
        slack = xe[self._slack_cols]
        viol = [
            Violation(self._slack_kind[i], self._slack_elem[i], int(self._slack_t[i]), float(slack[i]))
            for i in np.flatnonzero(slack > 1e-6)
        ]
        ch = xe[ix.c_ch]
        dis = xe[ix.c_dis]
        return Schedule(
            p_site_kw=xe[ix.c_imp] - xe[ix.c_exp],
            p_bat_kw=ch - dis,
            p_bat_ch_kw=ch,
            p_bat_dis_kw=dis,
            e_bat_kwh=xe[ix.c_ebat],
            p_hp_kw=xe[ix.c_hp],
            q_ts_kw=q_ts,
            e_ts_kwh=e_ts,
            curtail_kw=xe[ix.c_curt],
            p_unit_kw=xe[ix.c_u],
            p_root_kw=xe[ix.c_root],
            branch_flow_kw=xe[ix.c_f],
            v_pu=xe[ix.c_v],
            objective=objective,
            violations=viol,
        )
