"""The bench as a plain-text table: every figure beside its target, ratios against it."""

from __future__ import annotations

import math
from io import StringIO

from gridflex.bench.dispatch.mpc import BINDING_SHARE
from gridflex.bench.dispatch.results import (
    TARGET_COLD_MS,
    TARGET_MPC_S,
    TARGET_WARM_MS,
    DispatchBenchResult,
    MpcResult,
    RundcoppComparison,
)
from gridflex.bench.dispatch.step import BY_AREA_THREADS

# -- printing ---------------------------------------------------------------------------------


def _fmt(v: float | None, unit: str, digits: int = 1) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    return f"{v:,.{digits}f} {unit}"


def _verdict(measured: float | None, target: float | None) -> str:
    if target is None or measured is None:
        return ""
    return "meets" if measured <= target else f"misses ({measured / target:,.1f}x)"


def targets(cold_ms: float | None, warm_ms: float | None) -> str:
    """'≤ a / ≤ b ms' for a cold / warm pair of targets (either may be absent)."""
    return " / ".join(f"≤ {t:g} ms" if t else "-" for t in (cold_ms, warm_ms)) if cold_ms or warm_ms else ""


def both_verdicts(
    cold: float | None, cold_target: float | None, warm: float | None, warm_target: float | None
) -> str:
    """The verdicts of a cold / warm pair, joined ('meets / misses (1.2x)')."""
    if cold_target is None and warm_target is None:
        return ""
    return " / ".join(_verdict(v, t) or "-" for v, t in ((cold, cold_target), (warm, warm_target)))


def _mpc_rows(m: MpcResult) -> list[tuple[str, str, str, str, str]]:
    """Table rows of one MPC case."""
    rows: list[tuple[str, str, str, str, str]] = []
    solver = m.solver
    if m.areas is not None:
        lazily = ", grid rows lazily" if m.lazy_rows is not None else ""
        solver = f"by area ({m.areas} LPs, {BY_AREA_THREADS} threads{lazily})"
    what = f", HV/MV threshold at {BINDING_SHARE:.0%} of the free peak" if m.binding else ""
    case = f"MPC {m.n_sites:,} buildings x {m.horizon} x 15 min, {m.network} ({m.copies}x){what}, {solver}"
    tm = TARGET_MPC_S.get(m.n_sites)
    if m.skipped:
        rows.append((case, "skipped", f"skipped ({m.skipped})", f"≤ {tm:g} s" if tm else "", ""))
    if m.build_s is not None and m.areas is None:
        rows.append((case, "LP size", f"{m.n_cols:,} cols x {m.n_rows:,} rows", "", ""))
    if m.binding_periods is not None:
        rows.append(
            (case, "periods where the threshold binds", f"{m.binding_periods} of {m.horizon}", "", "")
        )
    if m.by_area_certified is not None:
        answer = "the areas (certified optimal for the full LP)" if m.by_area_certified else "the full LP"
        if m.full_from_areas:
            answer += ", started from the areas' bases"
        rows.append((case, "cold plan answered by", answer, "", ""))
    if m.lazy_rows is not None:
        rows.append((case, "grid rows added lazily", f"{m.lazy_rows:,}", "", ""))
    if m.cold_s is not None:
        rows.append(
            (
                case,
                "cold: build + solve",
                _fmt(m.cold_s, "s", 2),
                f"≤ {tm:g} s" if tm else "",
                _verdict(m.cold_s, tm),
            )
        )
    if m.build_s is not None:
        rows.append((case, "  build (numpy LP -> HiGHS)", _fmt(m.build_s, "s", 2), "", ""))
    if m.solve_s is not None:
        rows.append((case, "  solve", _fmt(m.solve_s, "s", 2), "", ""))
    if m.resolve_s is not None:
        rows.append((case, "warm re-solve, window moved 1 period", _fmt(m.resolve_s, "s", 2), "", ""))
    return rows


def format_result(result: DispatchBenchResult) -> str:
    """Plain-text table (rendered by rich without colour) of every figure beside its target."""
    from rich.table import Table

    table = Table(title="Dispatch benchmark", show_lines=False)
    for col in ("case", "figure", "measured", "target", "verdict"):
        table.add_column(col)
    from rich.console import Console

    rows = [] if result.comparison is None else _rundcopp_rows(result.comparison)
    _step_rows(result, rows)
    for m in result.mpc:
        rows.extend(_mpc_rows(m))
    last = ""
    for row in rows:
        table.add_row(row[0] if row[0] != last else "", *row[1:])
        last = row[0]
    buf = StringIO()
    console = Console(file=buf, width=160, color_system=None, force_terminal=False)
    console.print(table)
    mach = ", ".join(f"{k} {v}" for k, v in result.machine.items())
    console.print(f"machine: {mach}; total bench time {result.total_s:,.1f} s")
    return buf.getvalue()


def _rundcopp_rows(c: RundcoppComparison) -> list[tuple[str, str, str, str, str]]:
    case = f"Schutterwald {c.n_sites} households, {c.steps} steps"
    return [
        (case, "engine build (once)", _fmt(c.engine_build_ms, "ms"), "", ""),
        (case, "engine first solve", _fmt(c.engine_first_ms, "ms", 2), "", ""),
        (
            case,
            "engine warm solve, median (max)",
            f"{_fmt(c.engine_warm_ms, 'ms', 2)} ({_fmt(c.engine_warm_max_ms, 'ms', 2)})",
            "",
            "",
        ),
        (case, "pp.rundcopp per step, median", _fmt(c.rundcopp_ms, "ms"), "", ""),
        (case, "pp.rundcopp first call", _fmt(c.rundcopp_first_ms, "ms"), "", ""),
        (case, "rundcopp / engine warm", f"{c.ratio:,.1f}x", "", ""),
        (
            case,
            "max objective difference",
            f"{c.max_abs_obj_diff:.2e} abs, {c.max_rel_obj_diff:.2e} rel",
            "≈ 0",
            "agree" if c.max_rel_obj_diff <= 1e-4 else "DIFFER",
        ),
        (
            case,
            "station limit binding / rundcopp failed",
            f"{c.station_limit_binding_steps} / {c.rundcopp_failures} of {c.steps} steps",
            "",
            "",
        ),
    ]


def _step_rows(result: DispatchBenchResult, rows: list[tuple[str, str, str, str, str]]) -> None:
    for s in result.sizes:
        case = f"{s.n_sites:,} buildings, 1 step, {s.network} ({s.copies}x, {s.n_bus:,} buses)"
        size_line = f"{s.n_cols:,} cols x {s.n_rows:,} rows, {s.n_bat} bat, {s.n_hp} HP"
        if s.skipped:
            rows.append((case, "skipped", f"skipped ({s.skipped})", "", ""))
        tc = TARGET_COLD_MS.get(s.n_sites)
        tw = TARGET_WARM_MS.get(s.n_sites)
        if s.cold_ms is not None:
            rows.append((case, "LP size", size_line, "", ""))
            rows.append(
                (
                    case,
                    "cold: build + first solve",
                    _fmt(s.cold_ms, "ms"),
                    f"≤ {tc:g} ms" if tc else "",
                    _verdict(s.cold_ms, tc),
                )
            )
            rows.append((case, "  build (numpy LP -> HiGHS)", _fmt(s.build_ms, "ms"), "", ""))
            if s.pyomo_build_ms is not None:
                rows.append((case, "  same LP built through pyomo", _fmt(s.pyomo_build_ms, "ms"), "", ""))
            first = _fmt(s.first_solve_ms, "ms", 2)
            if s.first_iterations is not None:
                first += f" ({s.first_iterations:,} iterations from the crash basis)"
            rows.append((case, "  first solve alone", first, "", ""))
        if s.warm_ms is not None:
            rows.append(
                (
                    case,
                    f"warm re-solve, median of {s.warm_steps} (max)",
                    f"{_fmt(s.warm_ms, 'ms', 2)} ({_fmt(s.warm_max_ms, 'ms', 2)})",
                    f"≤ {tw:g} ms" if tw else "",
                    _verdict(s.warm_ms, tw),
                )
            )
        if s.warm_cop_ms is not None:
            rows.append(
                (
                    case,
                    "  same, COP changing every step",
                    f"{_fmt(s.warm_cop_ms, 'ms', 2)} ({_fmt(s.warm_cop_max_ms, 'ms', 2)})",
                    "",
                    "",
                )
            )
        if s.lazy_cold_ms is not None:
            rows.append(
                (
                    case,
                    f"HiGHS, grid rows lazily ({s.lazy_rows} added): cold / warm median (max)",
                    f"{_fmt(s.lazy_cold_ms, 'ms')} / {_fmt(s.lazy_warm_ms, 'ms', 2)}"
                    f" ({_fmt(s.lazy_warm_max_ms, 'ms', 2)})",
                    targets(tc, tw),
                    both_verdicts(s.lazy_cold_ms, tc, s.lazy_warm_ms, tw),
                )
            )
        if s.areas is not None:
            fell_back = f", full LP answered {s.by_area_full_lp}x" if s.by_area_full_lp else ""
            rows.append(
                (
                    case,
                    f"by area ({s.areas} LPs, {BY_AREA_THREADS} threads): cold / warm",
                    f"{_fmt(s.by_area_cold_ms, 'ms')} / {_fmt(s.by_area_warm_ms, 'ms', 2)}{fell_back}",
                    "",
                    "",
                )
            )
        if s.by_area_site_cold_ms is not None:
            fell_back = f", full LP answered {s.by_area_site_full_lp}x" if s.by_area_site_full_lp else ""
            rows.append(
                (
                    case,
                    "by area, each area site by site where certified: cold / warm median (max)",
                    f"{_fmt(s.by_area_site_cold_ms, 'ms')} / {_fmt(s.by_area_site_warm_ms, 'ms', 2)}"
                    f" ({_fmt(s.by_area_site_warm_max_ms, 'ms', 2)}){fell_back}",
                    "",
                    "",
                )
            )
        if s.by_site_certified is not None:
            rows.append(
                (
                    case,
                    f"by site ({s.by_site_certified} of {s.by_site_steps} steps certified site by site;"
                    f" {s.by_site_grid_binds} with a grid limit binding, {s.by_site_mended} of them mended"
                    " by subtree LPs, HiGHS the rest): cold / warm median (max)",
                    f"{_fmt(s.by_site_cold_ms, 'ms')} / {_fmt(s.by_site_warm_ms, 'ms', 2)}"
                    f" ({_fmt(s.by_site_warm_max_ms, 'ms', 2)})",
                    targets(tc, tw),
                    both_verdicts(s.by_site_cold_ms, tc, s.by_site_warm_ms, tw),
                )
            )
