"""The numpy builder (`dispatch/lp.py`) and the pyomo statement (`dispatch/model.py`) are one LP.

Checked two ways on problems that use every family (batteries, heat pumps with and without
a thermal store, units with piecewise-linear costs, a root cost, branch and voltage limits,
a multi-period horizon): the LPs have the same columns, rows and coefficients (as
multisets, since the builders may order them differently, and family by family through
each engine's index), and both give the same schedule and objective on random inputs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from cloud_controller.dispatch import (
    DispatchEngine,
    EngineOptions,
    Problem,
    PwlCost,
    SiteAssets,
    StepInputs,
    StorageState,
    build_problem,
)
from cloud_controller.dispatch.model.families import FAMILIES, SEGMENTED, shape
from cloud_controller.dispatch.model.lp import LpIndex
from tests.unit.dispatch.helpers import feeder


def _problem(horizon: int, *, units: bool) -> Problem:
    grid = feeder(5, rating_kw=12.0, r_pu_per_kw=2e-3)
    sites = np.array([1, 2, 2, 3, 4, 4])
    assets = SiteAssets(
        bat_e_kwh=np.array([10.0, 0.0, 16.0, 0.0, 8.0, 0.0]),
        bat_p_kw=np.array([5.0, 0.0, 8.0, 0.0, 4.0, 0.0]),
        hp_p_max_kw=np.array([3.0, 2.0, 0.0, 0.0, 4.0, 0.0]),
        ts_e_kwh=np.array([11.6, 0.0, 0.0, 0.0, 11.6, 0.0]),
    )
    p = build_problem(
        grid,
        sites,
        assets,
        horizon=horizon,
        ts_loss_per_step=0.002,
        site_pv=None if not units else np.array([True, True, False, True, False, True]),
    )
    if not units:
        return p
    return replace(
        p,
        unit_bus=np.array([2, 4], dtype=np.int64),
        unit_p_min_kw=np.array([-5.0, 0.0]),
        unit_p_max_kw=np.array([5.0, 6.0]),
        unit_sign=np.array([1.0, -1.0]),
        unit_cost=(
            PwlCost(slopes=(0.5, 2.0), offsets=(0.0, -3.0)),
            PwlCost(slopes=(1.5,), offsets=(0.0,)),
        ),
        root_cost=PwlCost(slopes=(1.0, 3.0), offsets=(0.0, -20.0)),
        root_p_max_kw=40.0,  # a bounded slack: load shedding columns exist
    )


def _lp_arrays(engine: DispatchEngine) -> dict[str, Any]:
    lp = engine.h.getLp()
    a = lp.a_matrix_
    start = np.asarray(a.start_)
    col_of_nz = np.repeat(np.arange(lp.num_col_), np.diff(start))
    return {
        "col_lower": np.asarray(lp.col_lower_),
        "col_upper": np.asarray(lp.col_upper_),
        "cost": np.asarray(lp.col_cost_),
        "row_lower": np.asarray(lp.row_lower_),
        "row_upper": np.asarray(lp.row_upper_),
        "nz_row": np.asarray(a.index_),
        "nz_col": col_of_nz,
        "nz_val": np.asarray(a.value_),
    }


def _rounded(values: Any) -> Counter[Any]:
    return Counter(tuple(np.round(np.asarray(v, dtype=float), 9).tolist()) for v in values)


@pytest.mark.parametrize(("horizon", "units"), [(1, False), (3, True)])
def test_numpy_and_pyomo_build_the_same_lp(horizon: int, units: bool) -> None:
    p = _problem(horizon, units=units)
    fast = DispatchEngine(p, EngineOptions(builder="numpy"))
    ref = DispatchEngine(p, EngineOptions(builder="pyomo"))
    assert (fast.n_cols, fast.n_rows) == (ref.n_cols, ref.n_rows)
    assert (fast.ix.c_shed >= 0).any() == units  # shedding only with a bounded slack
    assert int((fast.ix.c_curt[0] >= 0).sum()) == (4 if units else p.n_sites)
    a, b = _lp_arrays(fast), _lp_arrays(ref)
    assert len(a["nz_val"]) == len(b["nz_val"])
    for keys in (("col_lower", "col_upper", "cost"), ("row_lower", "row_upper")):
        assert _rounded(zip(*(a[k] for k in keys), strict=True)) == _rounded(
            zip(*(b[k] for k in keys), strict=True)
        ), keys
    assert _rounded(zip(a["nz_val"], strict=True)) == _rounded(zip(b["nz_val"], strict=True))
    # family by family: same bounds/costs where each engine says the family sits
    for name in LpIndex.__dataclass_fields__:
        if not name.startswith("c_"):
            continue
        ia, ib = getattr(fast.ix, name), getattr(ref.ix, name)
        if ib is None:  # known only to the numpy builder (for the crash basis)
            continue
        assert ia.shape == ib.shape, name
        assert np.array_equal(ia >= 0, ib >= 0), name
        ok = ia >= 0
        for key in ("col_lower", "col_upper", "cost"):
            np.testing.assert_allclose(a[key][ia[ok]], b[key][ib[ok]], rtol=1e-12, err_msg=f"{name} {key}")
    # every row family: same bounds and the same coefficients on the same families' columns
    shared = [
        n for n in LpIndex.__dataclass_fields__ if n.startswith("c_") and getattr(ref.ix, n) is not None
    ]
    col_a = {
        int(c): (name, i) for name in shared for i, c in enumerate(getattr(fast.ix, name).ravel()) if c >= 0
    }
    col_b = {
        int(c): (name, i) for name in shared for i, c in enumerate(getattr(ref.ix, name).ravel()) if c >= 0
    }
    for name in ("r_site", "r_heat", "r_bat", "r_ts", "r_bus", "r_st", "r_stf"):
        ra, rb = getattr(fast.ix, name).ravel(), getattr(ref.ix, name).ravel()
        assert len(ra) == len(rb), name
        for key in ("row_lower", "row_upper"):
            np.testing.assert_allclose(a[key][ra], b[key][rb], err_msg=f"{name} {key}")
        for r_a, r_b in zip(ra, rb, strict=True):
            ent_a = sorted(
                (col_a.get(int(c), ("other", 0)), round(float(v), 12))
                for c, v in zip(a["nz_col"][a["nz_row"] == r_a], a["nz_val"][a["nz_row"] == r_a], strict=True)
            )
            ent_b = sorted(
                (col_b.get(int(c), ("other", 0)), round(float(v), 12))
                for c, v in zip(b["nz_col"][b["nz_row"] == r_b], b["nz_val"][b["nz_row"] == r_b], strict=True)
            )
            assert ent_a == ent_b, name


@pytest.mark.parametrize(("horizon", "units"), [(1, False), (4, True)])
def test_numpy_and_pyomo_engines_give_the_same_schedules(horizon: int, units: bool) -> None:
    p = _problem(horizon, units=units)
    fast = DispatchEngine(p, EngineOptions(builder="numpy", cop_rtol=0.01))
    ref = DispatchEngine(p, EngineOptions(builder="pyomo", cop_rtol=0.01))
    rng = np.random.default_rng(7)
    state = StorageState(0.5 * p.bat_e_max_kwh, 0.3 * p.ts_e_max_kwh)
    n_viol = 0
    for k in range(12):
        pv = rng.uniform(0.0, 8.0, (horizon, p.n_sites))
        x = StepInputs(
            base_kw=rng.uniform(0.0, 6.0, (horizon, p.n_sites)) - pv,
            pv_kw=pv,
            heat_kw=rng.uniform(0.0, 6.0, (horizon, p.n_hp)),
            cop=rng.uniform(2.5, 4.0, horizon),
            c_import=np.full(horizon, 0.3 if k % 3 == 0 else 1.0),
            hp_cap_frac=np.full((horizon, p.n_hp), 0.3 if k % 4 == 1 else 1.0),
            station_limit_kw=np.full(horizon, 8.0 if k % 2 else np.inf),
            station_feed_limit_kw=np.full(horizon, 10.0),
        )
        sa, sb = fast.solve(x, state), ref.solve(x, state)
        assert sa.objective == pytest.approx(sb.objective, rel=1e-7, abs=1e-7)
        if not units:
            # with units and a root cost the optimum is degenerate (equal objective, other
            # vertex); without them the grid exchange and the relaxed limits are unique
            np.testing.assert_allclose(sa.p_root_kw, sb.p_root_kw, atol=1e-6)
            assert sorted((v.kind, v.element, v.t) for v in sa.violations) == sorted(
                (v.kind, v.element, v.t) for v in sb.violations
            )
        n_viol += len(sa.violations)
        state = sb.next_state()
    assert n_viol > 0  # the limits did bind in some calls: the slacks were compared too


@pytest.mark.parametrize(("horizon", "units"), [(1, False), (3, True)])
def test_both_builders_give_every_family_of_the_table_its_stated_shape(horizon: int, units: bool) -> None:
    """The family table (`model/families.py`) names every index family of `LpIndex` once, and
    each builder puts each family it knows where the table says, with the table's shape."""
    index_fields = {n for n in LpIndex.__dataclass_fields__ if n.startswith(("c_", "r_"))}
    table = [f.field for f in FAMILIES]
    assert len(table) == len(set(table)) and set(table) | set(SEGMENTED) == index_fields
    p = _problem(horizon, units=units)
    fast = DispatchEngine(p, EngineOptions(builder="numpy"))
    ref = DispatchEngine(p, EngineOptions(builder="pyomo"))
    for fam in FAMILIES:
        engines = (fast,) if fam.pyomo is None else (fast, ref)
        for engine in engines:
            idx = getattr(engine.ix, fam.field)
            assert idx is not None and idx.shape == shape(p, fam), (fam.field, engine.options.builder)
            n = engine.n_cols if fam.is_column else engine.n_rows
            assert idx.max(initial=-1) < n, fam.field
        if fam.pyomo is None:
            assert getattr(ref.ix, fam.field) is None, fam.field
