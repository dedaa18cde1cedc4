"""Check every step of a run with an AC power flow (power-grid-model batch), the Schutterwald study §2.3.

The OPF plans on a lossless linear model; the AC flow adds losses and reactive effects.
We report the AC HV/MV load (violations are counted on both), the AC-vs-DC gap at the
HV/MV station (the Schutterwald study found < 5 %), the MV/LV transformer loadings and the voltage band.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from cloud_controller.grid import BatchPowerFlow, PowerFlowResult, dc_ac_discrepancy
from cloud_controller.grid.region import Region
from cloud_controller.study.inputs import StudyInputs
from cloud_controller.study.results import ScenarioRun

_FLOWS: dict[int, BatchPowerFlow] = {}  # per region object (a pandapower net is not hashable)


def _flow(region: Region) -> BatchPowerFlow:
    key = id(region)
    if key not in _FLOWS:
        _FLOWS.clear()
        _FLOWS[key] = BatchPowerFlow(region.net, load_idx=region.site_load_idx)
    return _FLOWS[key]


def ac_steps(inp: StudyInputs, run: ScenarioRun, reference: ScenarioRun | None = None) -> PowerFlowResult:
    """Per-step AC results of a run.

    Steps it took over from `reference` (see `runner.run_opf`) take the reference's results,
    so only its own steps are computed.
    """
    flow = _flow(inp.region)
    if run.reused is not None and reference is not None and reference.ac_steps is not None:
        rows = np.flatnonzero(~run.reused)
        if len(rows) == 0:
            return cast(PowerFlowResult, reference.ac_steps)
        sub = flow.run(run.p_site_kw[rows].astype(float), steps_per_batch=8_760)
        return cast(PowerFlowResult, reference.ac_steps).with_steps(rows, sub)
    return flow.run(run.p_site_kw.astype(float), steps_per_batch=8_760)


def validate_run(
    inp: StudyInputs, run: ScenarioRun, reference: ScenarioRun | None = None, *, keep_steps: bool = False
) -> dict[str, Any]:
    """AC results of one run (a year takes ~9 s here; split in quarter-year batches for memory).

    `keep_steps` stores the per-step results in `run.ac_steps` (for runs that reuse this one).
    """
    region = inp.region
    res = ac_steps(inp, run, reference)
    if keep_steps:
        run.ac_steps = res
    # The station's load is what leaves the HV/MV transformer into the MV bus: its own iron
    # losses (14 kW for a 25 MVA unit here feeding only three stations) are not load.
    p_station = res.p_root_kw
    if region.hvmv_branch is not None and res.trafo_p_lv_kw is not None:
        col = res.trafo_names.index(region.grid.branch_names[region.hvmv_branch])
        p_station = res.trafo_p_lv_kw[:, col]
    gap = dc_ac_discrepancy(run.p_root_kw, p_station)
    stations: dict[str, float] = {}
    for name, k in region.station_branch.items():
        stations[name] = float(np.nanmax(res.trafo_loading_of(region.grid.branch_names[k])) * 100.0)
    if region.hvmv_branch is not None:
        stations["HV/MV"] = float(
            np.nanmax(res.trafo_loading_of(region.grid.branch_names[region.hvmv_branch])) * 100.0
        )
    return {
        "p_root_kw": p_station,
        "p_source_kw": res.p_root_kw,
        "ac_dc_max_rel_pct": gap["max_rel"] * 100.0,
        "ac_dc_mean_rel_pct": gap["mean_rel"] * 100.0,
        "station_max_loading_pct": stations,
        "v_min_pu": float(np.nanmin(res.v_min_pu)),
        "v_max_pu": float(np.nanmax(res.v_max_pu)),
        "line_max_loading_pct": float(np.nanmax(res.line_loading_max) * 100.0),
        "failed_steps": len(res.failed_steps),
    }
