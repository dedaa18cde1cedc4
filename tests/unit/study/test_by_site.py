"""The study with steps answered site by site (`opf_by_site`) equals the study through HiGHS.

One station, one winter week, the same COP in both (`cop_rtol=0`: HiGHS then holds no
COP of its own), so both solve the same LP in every step: the counts and energies agree.
"""

from __future__ import annotations

from typing import Any

import pytest

from cloud_controller.study.config import StudyConfig
from cloud_controller.study.study import load_inputs, run_study, summarise
from tests.unit.study.test_reuse import TINY


def _summary(by_site: bool) -> dict[str, Any]:
    options: dict[str, Any] = {
        **TINY,
        "scenarios": ("stor", "stor_cura", "stor_proa_prob"),
        "opf_by_site": by_site,
        "cop_rtol": 0.0,
    }
    cfg = StudyConfig(**options)
    result: dict[str, Any] = summarise(run_study(cfg, inputs=load_inputs(cfg, quick=True)))["results"]
    week: dict[str, Any] = result["near_critical"]
    return week


def test_by_site_counts_like_highs_and_answers_most_steps() -> None:
    fast, lp = _summary(True), _summary(False)
    steps = 7 * 96
    assert fast["stor"]["steps_by_site"] > 0.9 * steps  # Stor: no threshold, few binding limits
    assert 0 < fast["stor_proa_prob"]["steps_by_site"] < steps  # pre-charging under the threshold
    for sc in ("stor", "stor_cura", "stor_proa_prob"):
        assert lp[sc]["steps_by_site"] == 0
        assert fast[sc]["load_violations"] == lp[sc]["load_violations"], sc
        assert fast[sc]["feed_in_violations"] == lp[sc]["feed_in_violations"], sc
        for key, kwh in lp[sc]["energy_kwh"].items():
            assert fast[sc]["energy_kwh"][key] == pytest.approx(kwh, rel=1e-3, abs=0.1), (sc, key)
