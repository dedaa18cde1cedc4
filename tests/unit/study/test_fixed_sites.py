"""Households without flexibility as fixed loads (`fixed_sites.FixedSites`): the same study."""

from __future__ import annotations

import numpy as np
import pytest

from cloud_controller.dispatch import SiteAssets, build_problem
from cloud_controller.study.config import StudyConfig
from cloud_controller.study.fixed_sites import FixedSites
from cloud_controller.study.inputs import StudyInputs
from cloud_controller.study.runner import run_opf
from cloud_controller.study.study import load_inputs
from tests.unit.dispatch.helpers import feeder

TINY = {
    "stations": ("T_idx_118",),
    "station_roles": {"T_idx_118": "focus_pv"},
    "quick_weeks": ("01-13", "06-16"),
}


@pytest.fixture(scope="module")
def inputs() -> StudyInputs:
    return load_inputs(StudyConfig(**TINY), quick=True)  # type: ignore[arg-type]


@pytest.mark.parametrize(("scenario", "stress"), [("stor", None), ("stor_cura", "critical")])
def test_fixed_loads_give_the_full_lp(inputs: StudyInputs, scenario: str, stress: str | None) -> None:
    small = run_opf(inputs, scenario, stress)
    full = run_opf(inputs, scenario, stress, fixed_sites=False)
    # the grid exchange of every household, the storage and the counts are the full LP's
    np.testing.assert_allclose(small.p_root_kw, full.p_root_kw, atol=1e-4)
    np.testing.assert_allclose(small.extras["e_bat_kwh"], full.extras["e_bat_kwh"], atol=1e-4)
    for key in ("battery_discharged", "pv_curtailed", "heat_unmet"):
        assert small.energy_kwh[key] == pytest.approx(full.energy_kwh[key], abs=1e-3), key


def test_fixed_loads_with_proa_count_like_the_full_lp(inputs: StudyInputs) -> None:
    """ProA pre-charging under the headroom is a tie between batteries (any split is optimal),
    so the two LPs may pick other vertices; the counts and energies must agree closely."""
    limit = inputs.limit_kw("critical")
    small = run_opf(inputs, "stor_proa_prob", "critical")
    full = run_opf(inputs, "stor_proa_prob", "critical", fixed_sites=False)
    n_small = int((small.p_root_kw > limit + 0.1).sum())
    n_full = int((full.p_root_kw > limit + 0.1).sum())
    assert n_full > 0 and abs(n_small - n_full) <= max(2, 0.03 * n_full)
    assert small.energy_kwh["battery_discharged"] == pytest.approx(
        full.energy_kwh["battery_discharged"], rel=0.02
    )


def test_exact_only_where_no_feed_in_limit_can_bind() -> None:
    grid = feeder(3, rating_kw=20.0)  # root - bus 1 - bus 2, 20 kW each way
    assets = SiteAssets(
        bat_e_kwh=np.array([10.0, 0.0, 0.0]),
        bat_p_kw=np.array([5.0, 0.0, 0.0]),
        hp_p_max_kw=np.zeros(3),
        ts_e_kwh=np.zeros(3),
    )
    p = build_problem(grid, np.array([2, 2, 2]), assets)
    base = np.array(
        [
            [1.0, 1.0, 1.0],  # load: exact
            [-4.0, -4.0, -4.0],  # 12 kW surplus (+5 kW battery) <= 20: exact
            [-8.0, -8.0, -8.0],  # 24 kW surplus > 20: a feed-in limit can bind
            [1.0, 1.0, 1.0],  # load, but an HV/MV feed-in limit is set
        ]
    )
    inf = np.full(4, np.inf)
    feed = np.array([np.inf, np.inf, np.inf, 50.0])
    fixed = FixedSites.of(p, base, inf, feed)
    assert fixed is not None
    assert fixed.flex.tolist() == [True, False, False]
    assert fixed.exact.tolist() == [True, True, False, False]
    np.testing.assert_allclose(fixed.bus_kw[:, 2], base[:, 1:].sum(axis=1))
    # with the HV/MV load limit set, a battery might export: its discharge counts too
    lim = np.full(4, 30.0)
    base2 = np.full((4, 3), -5.0)  # 15 kW surplus, +5 kW battery = 20: still within
    assert FixedSites.of(p, base2, lim, inf).exact.all()  # type: ignore[union-attr]
    base2[:, 0] = -5.5
    assert not FixedSites.of(p, base2, lim, inf).exact.any()  # type: ignore[union-attr]
    assert FixedSites.of(p, base2, inf, inf).exact.all()  # type: ignore[union-attr]
