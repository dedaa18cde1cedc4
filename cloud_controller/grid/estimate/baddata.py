"""The pieces of the bad-data step: normalised residuals, the pseudo-measurements a meter conflicts with, removal.

Why pseudo-measurements are widened before a real meter is removed: where a real meter and
pseudo-measurements are the only redundancy (a substation meter over unmetered households),
they form one conflict — on a radial feeder the meter measures the sum of what is below it,
and every row of that sum has the *same* normalised residual |D|/√(Σσ²) (Abur & Gómez
Expósito, *Power System State Estimation*, 2004, ch. 5: such a group is not identifiable by
residuals alone). The largest-normalised-residual test then picks a real meter only because
pseudo-measurements are never candidates. Priors decide instead: a meter's σ comes from its
accuracy class; a pseudo-measurement's σ comes from a forecast whose errors are assumed
independent between households, while real forecast errors in one area are positively
correlated (the same weather, the same evening) — n fully correlated errors of σ each sum
to n·σ, not √n·σ, so a group's pseudo σ can be too confident by up to √n. Hence: the
pseudo-measurements whose residuals are significant (r_N above the threshold) and strongly
correlated with the meter's residual (|ρ| ≥ `pseudo_coupling`) are that meter's conflict
group; their σ is widened by `pseudo_widen_factor` and the period re-estimated, at most up to
`max_pseudo_factor` per load (8: the √n of 64 households), before any real meter is removed.
Power meters only (flows, site meters): a voltage meter's misfit is a voltage drop, which
widened loads explain only by implausible ones — on the region a busbar meter 30σ off was
absorbed by loads widened 8x instead of being removed — so voltage meters go straight to
removal. A meter whose conflict is with other real meters (a redundant meter with a gross error) has
no such group and is removed as before; among real meters tied in one group, the one
`largest_residual` names.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from cloud_controller.grid.estimate.measurements import MeasurementBatch
from cloud_controller.grid.estimate.result import BadDatum
from cloud_controller.grid.estimate.rows import RowMeta
from cloud_controller.grid.estimate.wls import Rows

__all__ = ["conflict_rows", "largest_residual", "normalised_residuals", "pseudo_rows", "remove_sensor"]

#: r_N within this share of the largest count as a tie (one conflict group: equal r_N in theory).
TIE_SHARE = 0.01

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def normalised_residuals(r: FloatArray, omega: FloatArray, sigma: FloatArray) -> FloatArray:
    """|r| / √Ω per row; 0 where Ω is unknown (NaN) or ≈ 0 (a critical measurement: undetectable)."""
    om = np.nan_to_num(omega, nan=0.0)
    crit = om <= 1e-10 * sigma**2
    out: FloatArray = np.where(crit, 0.0, np.abs(r) / np.sqrt(np.maximum(om, 1e-300)))
    return out


def largest_residual(cand: IntArray, rn: FloatArray, r: FloatArray, sigma: FloatArray) -> int:
    """The candidate row to blame: the largest r_N; among ties, the largest |r|/σ.

    Members of one conflict group have the same r_N, so residuals cannot tell them apart. In
    a sum group r_j = D σ_j² / Σσ², so the largest |r_j|/σ_j is the meter for which the
    misfit D is the smallest multiple of its own σ: with gross errors of a similar size
    relative to each meter's accuracy, that is the most likely one.
    """
    top = float(rn[cand].max())
    ties = cand[rn[cand] >= (1.0 - TIE_SHARE) * top]
    return int(ties[np.argmax(np.abs(r[ties]) / sigma[ties])])


def pseudo_rows(
    rows: Rows, meta: list[RowMeta], metered: npt.NDArray[np.bool_], load_ppc_bus: IntArray
) -> IntArray:
    """Injection rows (P and Q) of buses that carry at least one pseudo-measured load."""
    pseudo_bus = np.unique(load_ppc_bus[~metered])
    out = [
        j
        for j, (m, kd) in enumerate(zip(meta, rows.kind, strict=True))
        if m.family == "load" and kd in ("p_inj", "q_inj") and rows.bus[j] in pseudo_bus
    ]
    return np.asarray(out, dtype=np.int64)


def conflict_rows(
    k: int,
    rn: FloatArray,
    omega: FloatArray,
    omega_k: FloatArray,
    pseudo: IntArray,
    *,
    rn_threshold: float,
    coupling: float,
) -> IntArray:
    """The pseudo rows in row k's conflict group (see the module docstring).

    A pseudo row j belongs if its own r_N is above `rn_threshold` and the correlation of its
    residual with row k's, ρ = Ω_jk / √(Ω_jj Ω_kk), is at least `coupling` in magnitude.
    """
    if not len(pseudo) or not omega[k] > 0:
        return np.zeros(0, dtype=np.int64)
    om_j = omega[pseudo]
    ok = np.isfinite(om_j) & (om_j > 0)
    rho = np.zeros(len(pseudo))
    rho[ok] = omega_k[pseudo[ok]] / np.sqrt(om_j[ok] * omega[k])
    out: IntArray = pseudo[ok & (rn[pseudo] > rn_threshold) & (np.abs(rho) >= coupling)]
    return out


def remove_sensor(
    step: MeasurementBatch, m: RowMeta, rows: Rows, r: FloatArray, k: int, t: int, rn: float, kw_per_pu: float
) -> tuple[MeasurementBatch, BadDatum]:
    """Switch off the sensor behind row k of the one-period `step`; a load falls back to its pseudo-measurement."""
    if m.family == "load":
        is_q = rows.kind[k] == "q_inj"
        measured = float((step.loads.q_kvar if is_q else step.loads.p_kw)[0, m.col])
        est = measured + float(r[k]) * kw_per_pu  # r = z - h with z = -load: the estimate is measured + r
        return step.with_pseudo(0, m.col), BadDatum(t, m.sensor, m.label, measured, est, rn, "pseudo")
    if m.family == "voltage":
        measured = float(step.voltage.u_pu[0, m.col])
        return step.without_voltage(0, m.col), BadDatum(
            t, m.sensor, m.label, measured, measured - float(r[k]), rn, "nothing"
        )
    measured = float(step.flows.p_kw[0, m.col])
    return step.without_flow(0, m.col), BadDatum(
        t, m.sensor, m.label, measured, measured - float(r[k]) * kw_per_pu, rn, "nothing"
    )
