"""BatchPowerFlow (power-grid-model) against pandapower, energy balance, and year-sized batches."""

from __future__ import annotations

import copy
import time
import warnings
from typing import Any

import numpy as np
import pytest

from cloud_controller.grid import (
    BatchPowerFlow,
    PowerFlowResult,
    Region,
    build_schutterwald_region,
    dc_ac_discrepancy,
)
from protocols.errors import ConfigError


@pytest.fixture(scope="module")
def region() -> Region:
    return build_schutterwald_region()


@pytest.fixture(scope="module")
def bpf(region: Region) -> BatchPowerFlow:
    return BatchPowerFlow(region.net, region.site_load_idx)


@pytest.fixture(scope="module")
def random_loads(region: Region) -> tuple[np.ndarray, np.ndarray]:
    """5 load vectors (kW, kvar); a third of the households feed in (PV, negative p)."""
    rng = np.random.default_rng(42)
    n = region.n_sites
    p = rng.uniform(0.0, 5.0, size=(5, n))
    pv = rng.random(size=(5, n)) < 0.33
    p[pv] = -rng.uniform(0.0, 6.0, size=int(pv.sum()))
    p[4] = -np.abs(p[4])  # one step of pure feed-in: power flows back up to the HV grid
    q = rng.uniform(-0.5, 0.8, size=(5, n))
    return p, q


@pytest.fixture(scope="module")
def pandapower_results(region: Region, random_loads: tuple[np.ndarray, np.ndarray]) -> list[dict[str, Any]]:
    import pandapower as pp

    p, q = random_loads
    net = copy.deepcopy(region.net)
    out = []
    for k in range(p.shape[0]):
        net.load.loc[region.site_load_idx, "p_mw"] = p[k] / 1e3
        net.load.loc[region.site_load_idx, "q_mvar"] = q[k] / 1e3
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pp.runpp(net)
        out.append(
            {
                "p_ext_kw": float(net.res_ext_grid.p_mw.sum() * 1e3),
                "vm_pu": net.res_bus.vm_pu.copy(),
                "trafo_loading": net.res_trafo.loading_percent.to_numpy() / 100.0,
                "trafo_idx": net.res_trafo.index.to_numpy(),
                "line_loading_max": float(net.res_line.loading_percent.max() / 100.0),
                "losses_kw": float((net.res_line.pl_mw.sum() + net.res_trafo.pl_mw.sum()) * 1e3),
            }
        )
    return out


@pytest.fixture(scope="module")
def pgm_result(bpf: BatchPowerFlow, random_loads: tuple[np.ndarray, np.ndarray]) -> PowerFlowResult:
    p, q = random_loads
    return bpf.run(p, q, keep_bus_voltages=True)


def test_matches_pandapower(
    bpf: BatchPowerFlow, pgm_result: PowerFlowResult, pandapower_results: list[dict[str, Any]]
) -> None:
    res = pgm_result
    assert res.bus_vm_pu is not None and res.bus_idx is not None
    assert len(res.failed_steps) == 0
    worst = {"p_rel": 0.0, "v_pu": 0.0, "trafo": 0.0, "line": 0.0}
    for k, ref in enumerate(pandapower_results):
        p_rel = abs(res.p_root_kw[k] - ref["p_ext_kw"]) / abs(ref["p_ext_kw"])
        assert p_rel < 1e-3, (k, res.p_root_kw[k], ref["p_ext_kw"])

        vm_ref = ref["vm_pu"].reindex(res.bus_idx).to_numpy(dtype=float)
        # the same buses are unfed (NaN) in both
        np.testing.assert_array_equal(np.isnan(res.bus_vm_pu[k]), np.isnan(vm_ref))
        dv = np.nanmax(np.abs(res.bus_vm_pu[k] - vm_ref))
        assert dv < 1e-4, (k, dv)
        assert res.v_min_pu[k] == pytest.approx(np.nanmin(vm_ref), abs=1e-4)
        assert res.v_max_pu[k] == pytest.approx(np.nanmax(vm_ref), abs=1e-4)

        order = [res.trafo_names.index(f"trafo:{i}") for i in ref["trafo_idx"]]
        dt = np.max(np.abs(res.trafo_loading[k, order] - ref["trafo_loading"]))
        assert dt < 1e-3, (k, dt)
        dl = abs(res.line_loading_max[k] - ref["line_loading_max"])
        assert dl < 1e-3, (k, dl)
        worst = {
            "p_rel": max(worst["p_rel"], p_rel),
            "v_pu": max(worst["v_pu"], dv),
            "trafo": max(worst["trafo"], dt),
            "line": max(worst["line"], dl),
        }
    print(f"max PGM-vs-pandapower differences: {worst}")


def test_feed_in_reverses_root_power(pgm_result: PowerFlowResult) -> None:
    # step 4 is pure feed-in: the region exports, and the voltage rises above the slack's 1.0 pu
    assert pgm_result.p_load_kw[4] < 0
    assert pgm_result.p_root_kw[4] < 0
    assert pgm_result.v_max_pu[4] > 1.0


def test_root_is_loads_plus_losses(
    pgm_result: PowerFlowResult, pandapower_results: list[dict[str, Any]]
) -> None:
    """Energy balance: root = loads + line and trafo losses (losses from pandapower, independently)."""
    for k, ref in enumerate(pandapower_results):
        assert pgm_result.losses_kw[k] > 0
        assert pgm_result.p_root_kw[k] == pytest.approx(
            pgm_result.p_load_kw[k] + ref["losses_kw"], rel=1e-3, abs=0.05
        )


def test_losses_moderate_load(bpf: BatchPowerFlow) -> None:
    """Losses are positive in both flow directions, and small at moderate load.

    The no-load (iron) losses, about 18 kW here, mostly the 14 kW of the 25 MVA HV/MV
    transformer that feeds only three LV stations, are a fixed offset; the load-dependent
    part must stay below 5 % of the load.
    """
    rng = np.random.default_rng(7)
    n = bpf.n_loads
    p = np.vstack(
        [
            np.zeros(n),
            rng.uniform(0.5, 2.5, size=(4, n)),  # about 1.5 kW per household: moderate load
            -rng.uniform(0.5, 2.5, size=(2, n)),  # PV feed-in
        ]
    )
    res = bpf.run(p)
    no_load_kw = res.losses_kw[0]
    assert 10.0 < no_load_kw < 30.0
    assert np.all(res.losses_kw > 0)
    assert np.all(res.losses_kw[1:] > no_load_kw)
    load_dependent = (res.losses_kw[1:5] - no_load_kw) / res.p_load_kw[1:5]
    assert np.all(load_dependent > 0)
    assert np.all(load_dependent < 0.05)
    assert np.all(res.losses_kw[1:5] / res.p_load_kw[1:5] < 0.07)


def test_year_sized_batch_shapes(bpf: BatchPowerFlow) -> None:
    """2,880 steps (30 days) here; a full year is `time_year()` (about 18 s, benchmark only)."""
    n_steps = 2_880
    rng = np.random.default_rng(3)
    p = rng.uniform(-4.0, 6.0, size=(n_steps, bpf.n_loads))
    t0 = time.perf_counter()
    res = bpf.run(p)
    dt = time.perf_counter() - t0
    print(f"{n_steps} steps in {dt:.2f} s -> full year about {dt * 35_040 / n_steps:.0f} s")
    assert res.n_steps == n_steps
    assert res.p_root_kw.shape == (n_steps,)
    assert res.q_root_kvar.shape == (n_steps,)
    assert res.trafo_loading.shape == (n_steps, len(bpf.trafo_names)) == (n_steps, 4)
    assert res.line_loading_max.shape == (n_steps,)
    assert res.v_min_pu.shape == res.v_max_pu.shape == (n_steps,)
    assert res.bus_vm_pu is None
    assert len(res.failed_steps) == 0
    assert np.all(np.isfinite(res.p_root_kw))
    assert np.all(res.v_min_pu <= res.v_max_pu)
    assert np.all((res.v_min_pu > 0.8) & (res.v_max_pu < 1.2))
    # chunked runs give the same numbers
    part = bpf.run(p[:100], steps_per_batch=30)
    np.testing.assert_allclose(part.p_root_kw, res.p_root_kw[:100], rtol=1e-9)
    np.testing.assert_allclose(part.trafo_loading, res.trafo_loading[:100], rtol=1e-9)


def test_trafo_names_match_region(region: Region, bpf: BatchPowerFlow) -> None:
    assert region.hvmv_branch is not None
    names = set(bpf.trafo_names)
    assert region.grid.branch_names[region.hvmv_branch] in names
    for k in region.station_branch.values():
        assert region.grid.branch_names[k] in names
    res = bpf.run(np.ones((2, bpf.n_loads)))
    hv = res.trafo_loading_of(region.grid.branch_names[region.hvmv_branch])
    assert hv.shape == (2,)
    with pytest.raises(ConfigError):
        res.trafo_loading_of("trafo:999999")


def test_bad_shapes_rejected(bpf: BatchPowerFlow) -> None:
    with pytest.raises(ConfigError):
        bpf.run(np.zeros((3, bpf.n_loads + 1)))
    with pytest.raises(ConfigError):
        bpf.run(np.zeros((3, bpf.n_loads)), np.zeros((2, bpf.n_loads)))
    with pytest.raises(ConfigError):
        bpf.run(np.full((1, bpf.n_loads), np.nan))


def test_dc_ac_discrepancy() -> None:
    dc = np.array([100.0, 200.0, -50.0, 0.5, 0.0])
    ac = np.array([103.0, 210.0, -48.0, 2.0, 1.0])
    d = dc_ac_discrepancy(dc, ac)
    # steps with |dc| <= 2 kW (1 % of 200) are skipped
    assert d["n_steps"] == 3
    assert d["max_rel"] == pytest.approx(0.05)
    assert d["mean_rel"] == pytest.approx((0.03 + 0.05 + 0.04) / 3)
    assert d["mean_signed_rel"] == pytest.approx((0.03 + 0.05 + 0.04) / 3)
    assert np.isnan(dc_ac_discrepancy(np.zeros(3), np.ones(3))["max_rel"])
    with pytest.raises(ConfigError):
        dc_ac_discrepancy(np.zeros(3), np.zeros(4))


def test_dc_vs_ac_on_region(region: Region, bpf: BatchPowerFlow) -> None:
    """The lossless linear root power is within 10 % of the AC one at ordinary household loads."""
    rng = np.random.default_rng(11)
    p = rng.uniform(0.3, 3.0, size=(50, bpf.n_loads))
    ac = bpf.run(p).p_root_kw
    dc = region.grid.root_load_kw(p)
    d = dc_ac_discrepancy(dc, ac)
    assert d["n_steps"] == 50
    assert 0 < d["mean_signed_rel"] < 0.10
    assert d["max_rel"] < 0.10


def test_diverging_step_is_nan_not_fatal(bpf: BatchPowerFlow) -> None:
    """One impossible step (500 kW per household) must not sink a year of results."""
    p = np.ones((4, bpf.n_loads))
    p[2] = 500.0
    res = bpf.run(p)
    assert res.failed_steps.tolist() == [2]
    assert np.isnan(res.p_root_kw[2]) and np.isnan(res.v_min_pu[2])
    assert np.all(np.isnan(res.trafo_loading[2]))
    assert np.all(np.isfinite(res.p_root_kw[[0, 1, 3]]))


def test_iterative_current_equals_newton_raphson(
    region: Region, bpf: BatchPowerFlow, random_loads: tuple[np.ndarray, np.ndarray]
) -> None:
    """The default (iterative current, one factorisation per batch) against Newton-Raphson."""
    p, q = random_loads
    nr = BatchPowerFlow(region.net, region.site_load_idx, method="newton_raphson").run(p, q)
    ic = bpf.run(p, q)
    np.testing.assert_allclose(ic.p_root_kw, nr.p_root_kw, atol=1e-3)
    np.testing.assert_allclose(ic.v_min_pu, nr.v_min_pu, atol=1e-6)
    np.testing.assert_allclose(ic.trafo_loading, nr.trafo_loading, atol=1e-6)


def test_with_steps_replaces_only_the_given_steps(bpf: BatchPowerFlow) -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(-2.0, 3.0, (6, bpf.n_loads))
    whole = bpf.run(p)
    p2 = p.copy()
    p2[[1, 4]] += 1.0
    sub = bpf.run(p2[[1, 4]])
    merged = whole.with_steps(np.array([1, 4]), sub)
    direct = bpf.run(p2)
    np.testing.assert_allclose(merged.p_root_kw, direct.p_root_kw, rtol=1e-9)
    np.testing.assert_allclose(merged.trafo_loading, direct.trafo_loading, rtol=1e-9)
    np.testing.assert_allclose(merged.v_max_pu, direct.v_max_pu, rtol=1e-9)
    assert not np.allclose(merged.p_root_kw, whole.p_root_kw)
    with pytest.raises(ValueError):
        whole.with_steps(np.array([1, 2, 3]), sub)
