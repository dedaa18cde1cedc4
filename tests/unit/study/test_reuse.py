"""Policy runs take Stor's steps over where their LP is Stor's LP (`runner.run_opf`).

Checked on one station and one winter week: the run that reuses Stor gives the same
violations and energies as the run that solves every step, takes steps over only where
the policy is idle, and the study's AC check of a reused step is Stor's.
"""

from __future__ import annotations

import numpy as np
import pytest

from cloud_controller.study.config import StudyConfig
from cloud_controller.study.inputs import StudyInputs
from cloud_controller.study.results import ScenarioRun
from cloud_controller.study.runner import run_scenario
from cloud_controller.study.study import load_inputs, run_study, summarise

TINY = {
    "stations": ("T_idx_118",),
    "station_roles": {"T_idx_118": "focus_ev"},
    "quick_weeks": ("01-13",),
    "scenarios": ("stor", "stor_cura", "stor_curb"),
    "stress": ("near_critical",),
}


@pytest.fixture(scope="module")
def inputs() -> StudyInputs:
    return load_inputs(StudyConfig(**TINY), quick=True)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def stor(inputs: StudyInputs) -> ScenarioRun:
    return run_scenario(inputs, "stor", None)


@pytest.mark.parametrize("scenario", ["stor_cura", "stor_curb"])
def test_reusing_stor_gives_the_run_that_solves_every_step(
    inputs: StudyInputs, stor: ScenarioRun, scenario: str
) -> None:
    limit = inputs.limit_kw("near_critical")
    full = run_scenario(inputs, scenario, "near_critical")
    reused = run_scenario(inputs, scenario, "near_critical", reference=stor)
    assert full.reused is None and reused.reused is not None
    n = int(reused.reused.sum())
    assert 0 < n < inputs.prof.n_steps  # some steps taken over, the policy's own solved
    assert int((reused.p_root_kw > limit + 0.1).sum()) == int((full.p_root_kw > limit + 0.1).sum())
    for key in ("battery_discharged", "ev_shifted", "heat_deferred"):
        assert reused.energy_kwh[key] == pytest.approx(full.energy_kwh[key], rel=1e-3, abs=0.1), key
    # a taken-over step is Stor's step
    np.testing.assert_array_equal(reused.p_root_kw[reused.reused], stor.p_root_kw[reused.reused])
    # ... and the run that solved every step found the same there
    np.testing.assert_allclose(full.p_root_kw[reused.reused], stor.p_root_kw[reused.reused], atol=1e-3)


def test_study_with_reuse_counts_like_the_study_without(inputs: StudyInputs) -> None:
    cfg = StudyConfig(**TINY)  # type: ignore[arg-type]
    a = summarise(run_study(cfg, inputs=inputs, reuse=True))["results"]["near_critical"]
    b = summarise(run_study(cfg, inputs=inputs, reuse=False))["results"]["near_critical"]
    assert a["stor_cura"]["steps_reused"] > 0 and b["stor_cura"]["steps_reused"] == 0
    for sc in ("stor", "stor_cura", "stor_curb"):
        assert a[sc]["load_violations"] == b[sc]["load_violations"], sc
        assert a[sc]["ac_load_violations"] == b[sc]["ac_load_violations"], sc
        assert a[sc]["mvlv_max_loading_pct"] == pytest.approx(b[sc]["mvlv_max_loading_pct"], abs=0.2), sc
