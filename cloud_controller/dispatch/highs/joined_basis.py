"""A start basis for the whole gridless LP, joined from the areas' optimal bases.

Why: where the HV/MV threshold binds, the areas' answer (decompose.py) breaks it and the
whole LP must answer. Cold, with presolve, that LP costs more than the areas did. But with `lazy_grid` the areas' LPs and the whole LP
are the same families of columns and rows over different sites (no grid in any of them;
the grid rows each added lazily), so the areas' optimal bases put side by side are a basis
of the whole LP that is optimal for everything but the threshold rows. The dual simplex
then only has to pull the threshold in, a fraction of a cold solve's iterations
(docs/benchmarks.md).

The per-period part (slack-bus balance and power, its voltage and the HV/MV rows) comes
from the first area; grid rows an area added lazily are left out. The joined statuses may
therefore not be a square basis; they go to HiGHS as an "alien" basis, which it completes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cloud_controller.dispatch.highs.crash import BASIC, LOWER
from cloud_controller.dispatch.model.lp import LpIndex
from cloud_controller.dispatch.model.problem import IntArray

# LpIndex families by what their second axis counts. Every (T, n) family of the gridless
# LP is in exactly one of them (a test checks it, so a new family cannot be forgotten).
SITE_FAMILIES = ("c_imp", "c_exp", "c_curt", "c_shed", "r_site")
BATTERY_FAMILIES = ("c_ch", "c_dis", "c_ebat", "r_bat")
HEAT_PUMP_FAMILIES = ("c_hp", "c_unmet", "r_heat")
STORE_FAMILIES = ("c_qch", "c_qdis", "c_ets", "r_ts")  # heat pumps with a thermal store
PERIOD_FAMILIES = (
    "c_root",
    "c_zroot",
    "c_sst",
    "c_sstf",
    "r_st",
    "r_stf",
    "r_bus",
    "c_v",
    "c_svu",
    "c_svd",
    "r_v_up",
    "r_v_dn",
    "r_root_epi",
)
# empty in an LP without grid (branches) and without generic units (decomposable() refuses them)
EMPTY_FAMILIES = (
    "c_f",
    "c_sup",
    "c_sdn",
    "r_vdrop",
    "r_branch_up",
    "r_branch_dn",
    "c_u",
    "c_zu",
    "r_unit_epi",
)


@dataclass
class AreaBasis:
    """One area's optimal basis and where its entries sit in the whole problem."""

    ix: LpIndex  # the area's gridless LP
    col_status: IntArray  # HiGHS statuses of its columns (at least ix.n_cols)
    row_status: IntArray  # and rows (lazily added rows beyond ix.n_rows are ignored)
    sites: IntArray  # full site index of each area site
    batteries: IntArray
    heat_pumps: IntArray
    stores: IntArray  # full store position (among heat pumps with a store) of each area store


def joined_basis(full: LpIndex, areas: list[AreaBasis]) -> tuple[IntArray, IntArray]:
    """Column and row statuses for the whole gridless LP `full` from the areas' bases.

    Entries no area covers (there should be none) start nonbasic at their lower bound
    (columns) or basic (rows); HiGHS completes the basis.
    """
    col = np.full(full.n_cols, LOWER, dtype=np.int64)
    row = np.full(full.n_rows, BASIC, dtype=np.int64)
    for i, a in enumerate(areas):
        groups: list[tuple[tuple[str, ...], IntArray | None]] = [
            (SITE_FAMILIES, a.sites),
            (BATTERY_FAMILIES, a.batteries),
            (HEAT_PUMP_FAMILIES, a.heat_pumps),
            (STORE_FAMILIES, a.stores),
        ]
        if i == 0:
            groups.append((PERIOD_FAMILIES, None))
        for families, where in groups:
            for name in families:
                src = np.asarray(getattr(a.ix, name))
                dst = np.asarray(getattr(full, name))
                T = dst.shape[0]
                src = src.reshape(T, -1)
                dst = dst.reshape(T, -1)
                if where is not None:
                    dst = dst[:, where]
                ok = (src >= 0) & (dst >= 0)
                if name.startswith("c_"):
                    col[dst[ok]] = a.col_status[src[ok]]
                else:
                    row[dst[ok]] = a.row_status[src[ok]]
    return col, row
