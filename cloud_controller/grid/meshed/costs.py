"""Unit costs read from `poly_cost` / `pwl_cost` with pandapower's sign rules, and their PWL approximation.

Sign rules (pandapower 3.5, `opf/make_objective.py`): the cost rows are written on the
ppc generator power ``P`` (an injection; a controllable load or storage has ``P = -p``)
and multiplied by ``sign = -1`` for loads and storage. So a load with ``cp1_eur_per_mw = c``
costs ``c * p_load``, as its user meant; its constant ``cp0_eur`` counts with a minus sign,
and a quadratic ``cp2`` would become ``-c2 P²`` (concave): we refuse that instead of
solving a non-convex problem. Without any cost table rundcopp minimises the total
injection (``c1 = 1`` for every unit), and so do we. With `pwl_cost` present, linear
`poly_cost` rows become one segment over ``[p_min, p_max]`` and lose their ``cp0``;
`pwl_cost` and quadratic `poly_cost` together are refused (pandapower refuses them too).

The piecewise-linear approximation of a quadratic ``c2 p²`` on ``[lo, hi]`` with ``n`` equal
segments is the chord interpolation: it lies above the parabola by at most
``c2 (hi - lo)² / (4 n²)`` (at each segment's midpoint). Summed over units this bounds
the objective error: the approximate optimum's true cost is at most that much above the
exact optimum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from cloud_controller.grid.meshed.network import FloatArray, PwlSegments
from protocols.errors import ConfigError

LOAD_LIKE = ("load", "storage")


@dataclass(frozen=True)
class UnitCosts:
    """Per-unit polynomial coefficients on the injection, or a PWL cost, plus how they were read."""

    c0: FloatArray
    c1: FloatArray
    c2: FloatArray
    pwl: tuple[PwlSegments | None, ...]
    note: str


def _segments(points: Any, sign: float) -> PwlSegments:
    """Pandapower's `costs_from_areas`: breakpoints from (lower, upper, slope) areas, slopes times sign."""
    xs: list[float] = []
    ys: list[float] = []
    acc = 0.0
    last: float | None = None
    for lower, upper, slope in points:
        if last is None:
            xs.append(float(lower))
            acc = float(lower) * float(slope) * sign
            ys.append(acc)
        elif last != lower:
            raise ConfigError("non-consecutive pwl_cost areas", key="pwl_cost")
        last = float(upper)
        acc += (float(upper) - float(lower)) * float(slope) * sign
        xs.append(float(upper))
        ys.append(acc)
    x, y = np.asarray(xs), np.asarray(ys)
    slope = np.diff(y) / np.diff(x)
    if np.any(np.diff(slope) < -1e-12):
        raise ConfigError(
            "pwl_cost is not convex in the injection; the DC OPF needs convex costs", key="pwl_cost"
        )
    return PwlSegments(slope_eur_per_mw=slope, offset_eur=y[:-1] - slope * x[:-1])


def read_costs(net: Any, unit_names: tuple[str, ...]) -> UnitCosts:
    """Costs of the units named "table:index", as pandapower's `_make_objective` writes them."""
    n = len(unit_names)
    pos = {name: i for i, name in enumerate(unit_names)}
    c0, c1, c2 = np.zeros(n), np.zeros(n), np.zeros(n)
    pwl: list[PwlSegments | None] = [None] * n
    poly, pw = net.poly_cost, net.pwl_cost
    if not len(poly) and not len(pw):
        return UnitCosts(c0, np.ones(n), c2, tuple(pwl), "no costs: total injection minimised, as rundcopp")
    quadratic = len(poly) and bool(np.any(poly.cp2_eur_per_mw2.to_numpy(dtype=float) != 0))
    if quadratic and len(pw):
        raise ConfigError("pwl_cost cannot be mixed with quadratic poly_cost", key="poly_cost")
    for _, row in poly.iterrows():
        i = pos.get(f"{row.et}:{int(row.element)}")
        if i is None:
            continue  # out of service or not controllable: no unit, no cost (as pandapower)
        sign = -1.0 if row.et in LOAD_LIKE else 1.0
        if sign < 0 and float(row.cp2_eur_per_mw2) != 0:
            raise ConfigError(
                f"quadratic cost on {row.et} {int(row.element)}: pandapower's sign rule makes it concave",
                key="poly_cost",
            )
        c1[i] = sign * float(row.cp1_eur_per_mw)
        if len(pw):
            continue  # a linear row becomes a segment through (p_min, c1 p_min): no constant
        c0[i] = sign * float(row.cp0_eur)
        c2[i] = float(row.cp2_eur_per_mw2)
    for _, row in pw.iterrows():
        if str(row.get("power_type", "p")) != "p":
            continue  # reactive power costs do not exist in a DC OPF
        i = pos.get(f"{row.et}:{int(row.element)}")
        if i is None:
            continue
        seg = _segments(row.points, -1.0 if row.et in LOAD_LIKE else 1.0)
        if len(seg.slope_eur_per_mw) == 1:  # one segment: a linear cost (pypower's `pwl1`)
            c0[i], c1[i] = float(seg.offset_eur[0]), float(seg.slope_eur_per_mw[0])
        else:
            pwl[i] = seg
    note = "poly_cost (quadratic)" if quadratic else ("pwl_cost" if len(pw) else "poly_cost (linear)")
    return UnitCosts(c0, c1, c2, tuple(pwl), note)


@dataclass(frozen=True)
class PwlApproximation:
    """Chord segments replacing every quadratic cost, and the bound on the objective error they cause."""

    segments: tuple[PwlSegments | None, ...]  # (G,) None where the cost stays as it was
    n_segments: tuple[int, ...]  # (G,) 0 where not approximated
    error_bound_eur: float  # sum over units of c2 (hi - lo)² / (4 n²)


def approximate_quadratic(
    c1: FloatArray, c2: FloatArray, lo: FloatArray, hi: FloatArray, max_error_eur: float
) -> PwlApproximation:
    """Equal chord segments per quadratic unit so that the summed error stays within `max_error_eur`.

    The budget is shared equally: unit i gets ``max_error_eur / n_quadratic`` and
    ``n_i = ceil((hi - lo) · sqrt(c2 / (4 ε_i)))`` segments on its range ``[lo, hi]``,
    which must be finite (`implied_range` closes an unbounded slack by the balance).
    """
    quad = np.flatnonzero(c2 != 0)
    segs: list[PwlSegments | None] = [None] * len(c2)
    counts = [0] * len(c2)
    bound = 0.0
    if len(quad) == 0:
        return PwlApproximation(tuple(segs), tuple(counts), 0.0)
    eps = max_error_eur / len(quad)
    for i in quad:
        width = float(hi[i] - lo[i])
        if not math.isfinite(width):
            raise ConfigError(f"unit {i} has no finite range to approximate its quadratic cost on", key="pwl")
        n = max(1, math.ceil(width * math.sqrt(float(c2[i]) / (4 * eps))))
        # a unit held at one point (width 0) gets the tangent there: exact at that point
        x = np.linspace(float(lo[i]), float(hi[i]), n + 1) if width > 0 else np.asarray([lo[i], lo[i] + 1.0])
        y = c1[i] * x + c2[i] * x**2 if width > 0 else c1[i] * x + c2[i] * lo[i] * (2 * x - lo[i])
        slope = np.diff(y) / np.diff(x)
        segs[i] = PwlSegments(slope_eur_per_mw=slope, offset_eur=y[:-1] - slope * x[:-1])
        counts[i] = n
        bound += float(c2[i]) * width**2 / (4 * n**2)
    return PwlApproximation(tuple(segs), tuple(counts), bound)
