"""The LP's families in one table: both builders are checked against it, the pyomo index is read from it.

Every family is one `LpIndex` field: a column (c_*) or row (r_*) block of shape (T,) or
(T, n), n counting the family's entity. `pyomo_model.pyomo_lp` maps each family with a
pyomo component to HiGHS through this table; `lp.build_lp` writes every family by hand, and
`tests/unit/dispatch/test_lp_builder.py` checks, family by family, that both give what the
table states and the same bounds, costs and coefficients.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloud_controller.dispatch.model.problem import Problem


@dataclass(frozen=True)
class Family:
    """One column or row family of the LP."""

    field: str  # the `LpIndex` field
    pyomo: str | None  # the `build_model` component (None: the numpy builder alone knows it)
    entity: str  # what n counts: "" (one per period), site, bat, hp, store, unit, branch, bus
    what: str

    @property
    def is_column(self) -> bool:
        """Whether the family is of columns (fields named `c_...`) rather than rows."""
        return self.field.startswith("c_")


FAMILIES: tuple[Family, ...] = (
    Family("c_imp", "p_imp", "site", "grid import"),
    Family("c_exp", "p_exp", "site", "grid export"),
    Family("c_curt", "curt", "site", "PV curtailment (sites with curtailable PV)"),
    Family("c_shed", "shed", "site", "load shed (only with a bounded slack bus)"),
    Family("c_ch", "ch", "bat", "battery charge"),
    Family("c_dis", "dis", "bat", "battery discharge"),
    Family("c_ebat", "e_bat", "bat", "battery energy at the end of the period"),
    Family("c_hp", "hp", "hp", "heat-pump electric power"),
    Family("c_unmet", "unmet", "hp", "unmet heat"),
    Family("c_qch", "q_ch", "store", "thermal store charge"),
    Family("c_qdis", "q_dis", "store", "thermal store discharge"),
    Family("c_ets", "e_ts", "store", "thermal store energy"),
    Family("c_u", "u", "unit", "generic unit power"),
    Family("c_root", "p_root", "", "slack-bus (HV/MV) import"),
    Family("c_f", "f", "branch", "branch flow"),
    Family("c_v", "v", "bus", "bus voltage"),
    Family("c_sup", "s_up", "branch", "branch limit slack, forward"),
    Family("c_sdn", "s_dn", "branch", "branch limit slack, backward"),
    Family("c_svu", "sv_up", "bus", "voltage band slack, high"),
    Family("c_svd", "sv_dn", "bus", "voltage band slack, low"),
    Family("c_sst", "s_st", "", "HV/MV load threshold slack"),
    Family("c_sstf", "s_st_feed", "", "HV/MV feed-in threshold slack"),
    Family("r_site", "site_balance", "site", "site balance"),
    Family("r_heat", "heat_balance", "hp", "heat balance"),
    Family("r_bat", "bat_soc", "bat", "battery energy balance"),
    Family("r_ts", "ts_soc", "store", "thermal store energy balance"),
    Family("r_bus", "bus_balance", "bus", "bus balance"),
    Family("r_st", "station_up", "", "HV/MV load threshold"),
    Family("r_stf", "station_dn", "", "HV/MV feed-in threshold"),
    # known only to the numpy builder (what `highs.crash` needs for a start basis)
    Family("r_vdrop", None, "branch", "voltage drop along a branch"),
    Family("r_branch_up", None, "branch", "branch limit, forward (-1 where unlimited)"),
    Family("r_branch_dn", None, "branch", "branch limit, backward"),
    Family("r_v_up", None, "bus", "voltage band, high"),
    Family("r_v_dn", None, "bus", "voltage band, low"),
    Family("c_zu", None, "unit", "unit cost epigraph variable"),
    Family("c_zroot", None, "", "slack-bus cost epigraph variable"),
)
# families with a second entity axis (segments of a piecewise-linear cost): shapes not in the table
SEGMENTED = ("r_unit_epi", "r_root_epi")


def entity_count(problem: Problem, entity: str) -> int:
    """How many of `entity` the problem has (the n of a (T, n) family)."""
    p = problem
    counts = {
        "site": p.n_sites,
        "bat": p.n_bat,
        "hp": p.n_hp,
        "store": int((p.ts_e_max_kwh > 0).sum()),
        "unit": p.n_units,
        "branch": p.grid.n_branch,
        "bus": p.grid.n_bus,
    }
    return counts[entity]


def shape(problem: Problem, family: Family) -> tuple[int, ...]:
    """The family's index shape for `problem`: (T,) or (T, n)."""
    T = problem.horizon
    return (T,) if family.entity == "" else (T, entity_count(problem, family.entity))
