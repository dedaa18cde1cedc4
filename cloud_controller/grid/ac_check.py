"""The AC check's two uses beyond a dispatch check: the gap to the linear model, and its speed.

Why separate: `dc_ac_discrepancy` compares any two root-power series (it needs no power
flow), and `time_year` is a benchmark run on the Schutterwald region; neither is part of
the batch calculation in `powerflow.py`.
"""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt

from cloud_controller.grid.powerflow import BatchPowerFlow
from protocols.errors import ConfigError

FloatArray = npt.NDArray[np.float64]


def dc_ac_discrepancy(
    p_root_dc_kw: FloatArray, p_root_ac_kw: FloatArray, *, min_fraction: float = 0.01
) -> dict[str, float]:
    """Relative gap between the AC root power and the linear (DC, lossless) one.

    Steps where |DC| is below `min_fraction` of its largest magnitude are skipped: around the
    zero crossing (PV feed-in balancing the load) the relative gap blows up without meaning.
    Returns max and mean of |AC - DC| / |DC| over the kept steps, the mean signed gap, and
    how many steps were kept.
    """
    dc = np.asarray(p_root_dc_kw, dtype=float).ravel()
    ac = np.asarray(p_root_ac_kw, dtype=float).ravel()
    if dc.shape != ac.shape:
        raise ConfigError(f"DC and AC series differ in length: {dc.shape} vs {ac.shape}", key="p_root")
    ok = np.isfinite(dc) & np.isfinite(ac)
    scale = float(np.max(np.abs(dc[ok]))) if ok.any() else 0.0
    keep = ok & (np.abs(dc) > min_fraction * scale)
    if scale == 0.0 or not keep.any():
        return {
            "max_rel": float("nan"),
            "mean_rel": float("nan"),
            "mean_signed_rel": float("nan"),
            "n_steps": 0.0,
        }
    rel = (ac[keep] - dc[keep]) / np.abs(dc[keep])
    return {
        "max_rel": float(np.max(np.abs(rel))),
        "mean_rel": float(np.mean(np.abs(rel))),
        "mean_signed_rel": float(np.mean(rel)),
        "n_steps": float(keep.sum()),
    }


def time_year(n_steps: int = 35_040, *, threading: int = 0, seed: int = 0) -> float:
    """Seconds for one AC batch of a year of 15-minute steps on the Schutterwald region.

    Random household loads (-4..+6 kW, negative = PV feed-in); the model build is not timed.
    Kept out of the unit tests because it takes longer than a unit test should.
    """
    from cloud_controller.grid.region import build_schutterwald_region

    region = build_schutterwald_region()
    bpf = BatchPowerFlow(region.net, region.site_load_idx)
    rng = np.random.default_rng(seed)
    p = rng.uniform(-4.0, 6.0, size=(n_steps, bpf.n_loads))
    t0 = time.perf_counter()
    res = bpf.run(p, threading=threading)
    dt = time.perf_counter() - t0
    print(
        f"AC batch power flow: {n_steps} steps x {bpf.n_loads} loads in {dt:.2f} s "
        f"({dt / n_steps * 1e3:.3f} ms/step, threading={threading}, failed={len(res.failed_steps)})"
    )
    return dt
