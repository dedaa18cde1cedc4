"""The curtailment policies (CurA, CurB) applied to one run's EV and heat profiles.

Why separate: `policies.py` holds the measures as pure functions of a forecast; this is
where a run's inputs and configuration are fed to them, before the OPF loop (`runner.py`)
sees the modified profiles. ProA and ProB set per-step costs and are applied in the loop.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cloud_controller.study import policies
from cloud_controller.study.inputs import StudyInputs

FloatArray = npt.NDArray[np.float64]


def _curtailment(
    inp: StudyInputs, parts: set[str], onsets: policies.IntArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """EV, heat demand and heat-pump caps after the curtailment policies in `parts` (CurA, CurB)."""
    cfg = inp.cfg
    prof = inp.prof
    dt = prof.dt_h
    spd = inp.steps_per_day
    ev = prof.ev_kw
    heat = prof.heat_kw
    hp_cap = np.ones_like(heat)
    if "cura" in parts:
        ev = policies.cur_a(
            ev, onsets, spd, cap_kw=cfg.cura.ev_cap_kw, p_max_kw=cfg.sizes.ev_p_max_kw, dt_h=dt
        )
    if "curb" in parts:
        cb = policies.cur_b(
            heat,
            prof.cop,
            prof.hp_p_max_kw,
            onsets,
            share=cfg.curb.hp_share,
            duration_steps=round(cfg.curb.duration_h / dt),
            recovery_steps=round(cfg.curb.recovery_h / dt),
            dt_h=dt,
        )
        heat, hp_cap = cb.heat_kw, cb.hp_cap_frac
    return ev, heat, hp_cap
