"""`gridflex bench dr-selection`: the DR selection MILP at 1,000 buildings × 4 sources × 8 and 96 steps.

A seeded synthetic portfolio: every building has a battery, a heat pump in an RC zone, an
AHU fan and PV, each made into a source by `cloud_controller.dr.sources` from its
`flexmodels` model and a contract. The request asks the portfolio to reduce load by a
share of what it could give, so the batteries' energy and the zones' comfort bands bind.
Each size is asked twice: a request the portfolio MEETS (`met`: half of the summed reduce
caps over 2 h, 5 % over a day) and one it cannot (`partial`: 95 % over 2 h, half over a
day). Figures: build and solve seconds of the numpy builder as `select` answers by
default (`auto`), and as anchors measured in the same run: the whole LP as before this
round (`whole-before`: `decompose="never"`, presolve and HiGHS's own start), for the
8-step event the blocks coordinated by step prices (`prices`, `cloud_controller.dr.prices`)
and, for the shortest met case, the pyomo builder (the ratio says what numpy buys). The
table says every row's objective and unmet kWh so the answers can be compared.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import numpy as np

from cloud_controller.dr import (
    Contract,
    Objective,
    Selection,
    SelectionError,
    SelectionOptions,
    SelectionRequest,
    Source,
    battery_source,
    fan_source,
    heatpump_source,
    pv_source,
    select,
)
from flexmodels import BatteryFlexState, FanZone, RcZone

Builder = Literal["matrix", "pyomo"]

__all__ = ["DrBenchFigure", "bench_case", "format_figures", "portfolio", "run_dr_selection_bench"]


@dataclass(frozen=True)
class DrBenchFigure:
    """One size's figures."""

    buildings: int
    steps: int
    builder: str
    sources: int
    status: str
    unmet_kwh: float
    route: str
    inputs_s: float
    build_s: float
    solve_s: float
    cpu_s: float  # process CPU seconds of build + solve (all threads): less sensitive to a loaded machine
    note: str = ""
    objective_value: float = float("nan")
    case: str = ""  # `met` or `partial`
    method: str = "auto"  # `auto`, `whole-before`, `prices`, `shares`

    @property
    def total_s(self) -> float:
        """Models to answer: sources from the models, MILP build, HiGHS."""
        return self.inputs_s + self.build_s + self.solve_s


def portfolio(n_buildings: int, n_steps: int, *, dt_h: float = 0.25, seed: int = 3) -> list[Source]:
    """Seeded buildings, four sources each (battery, heat pump, fan, PV), 15-minute steps by default."""
    rng = np.random.default_rng(seed)
    hours = np.arange(n_steps) * dt_h
    sources: list[Source] = []
    for i in range(n_buildings):
        contract = Contract(
            site=f"b{i:04d}",
            program="bench",
            directions=frozenset({"reduce", "increase"}),
            p_max_kw=float(rng.uniform(8.0, 15.0)),
            events_per_day=2,
            max_duration=timedelta(days=1),
            comfort_t_min_c=20.0,
            comfort_t_max_c=24.0,
            price_eur_per_kwh=float(rng.uniform(0.05, 0.25)),
        )
        cap = float(rng.choice([5.0, 10.0, 13.5]))
        bat = BatteryFlexState(
            capacity_kwh=cap,
            soc_pct=float(rng.uniform(20.0, 90.0)),
            p_charge_max_kw=cap / 2,
            p_discharge_max_kw=cap / 2,
        )
        sources.append(battery_source("battery", bat, contract, n_steps=n_steps))
        zone = RcZone(
            r_k_per_kw=float(rng.uniform(3.0, 7.0)), c_kwh_per_k=float(rng.uniform(5.0, 12.0)), gains_kw=0.3
        )
        t_out = 2.0 + 4.0 * np.sin(2 * np.pi * (hours - 9.0) / 24.0)
        p_base = np.maximum(((21.0 - t_out) / zone.r_k_per_kw - zone.gains_kw) / 3.0, 0.0)
        sources.append(
            heatpump_source(
                "heatpump",
                zone,
                contract,
                t_now_c=21.0,
                p_base_kw=p_base,
                p_max_kw=6.0,
                cop=np.full(n_steps, 3.0),
            )
        )
        fz = FanZone(
            volume_m3=float(rng.uniform(200, 600)),
            co2_gen_m3_h=0.054,
            fan_flow_max_m3_h=450.0,
            fan_p_max_kw=0.75,
        )
        sources.append(
            fan_source(
                "ahu",
                fz,
                contract,
                co2_now_ppm=float(rng.uniform(500, 800)),
                s_now=0.6,
                n_steps=n_steps,
                dt_h=dt_h,
            )
        )
        pv = float(rng.uniform(3.0, 10.0)) * np.clip(np.sin(np.pi * (hours + 8.0 - 6.0) / 12.0), 0.0, None)
        sources.append(pv_source("pv", contract, p_pv_kw=pv))
    return sources


METHODS: dict[str, dict[str, object]] = {
    "auto": {},
    "whole": {
        "decompose": "never"
    },  # the whole LP from its crash basis (the met day's route before warm starts)
    "whole-before": {"decompose": "never", "whole_crash": False},
    "prices": {"decompose": "prices"},
    "shares": {"decompose": "shares"},
    "pyomo": {},
}


def share_of(case: str, n_steps: int) -> float:
    """The request's share of the summed reduce caps: `met` is met, `partial` is not (module doc)."""
    if case == "met":
        return 0.5 if n_steps <= 8 else 0.05
    return 0.95 if n_steps <= 8 else 0.5


def bench_case(
    n_buildings: int,
    n_steps: int,
    *,
    builder: Builder = "matrix",
    share: float = 0.5,
    objective: Objective = "min_cost",
    time_limit_s: float = 120.0,
    method: str = "auto",
    case: str = "",
) -> tuple[DrBenchFigure, Selection | None]:
    """One size: build the portfolio, ask for `share` of its reduce potential per step, select.

    `method`: a key of `METHODS` or a `SelectionOptions.decompose` value; `case` labels the figure.
    """
    t0 = time.perf_counter()
    sources = portfolio(n_buildings, n_steps)
    reduce_kw = np.sum([np.asarray(s.reduce_max_kw) for s in sources], axis=0)
    request = SelectionRequest(
        target_kw=-share * reduce_kw,
        dt_h=0.25,
        objective=objective,
        loss_price_eur_per_kwh=0.3,
    )
    inputs_s = time.perf_counter() - t0
    extra = METHODS.get(method, {"decompose": method})
    options = SelectionOptions(builder=builder, mip_rel_gap=1e-4, time_limit_s=time_limit_s, **extra)  # type: ignore[arg-type]
    label = method
    cpu0 = time.process_time()
    t_sel = time.perf_counter()
    try:
        sel = select(request, sources, options=options)
    except SelectionError as exc:  # out of time: a figure, not a crash
        wall = time.perf_counter() - t_sel
        fig = DrBenchFigure(n_buildings, n_steps, builder, len(sources), "timeout", float("nan"), "-",
                            inputs_s, 0.0, wall, time.process_time() - cpu0, str(exc),
                            case=case, method=label)  # fmt: skip
        return fig, None
    cpu_s = time.process_time() - cpu0
    fig = DrBenchFigure(
        buildings=n_buildings,
        steps=n_steps,
        builder=builder,
        sources=len(sources),
        status=sel.status,
        unmet_kwh=float(sel.unmet_kw.sum() * 0.25),
        route=sel.route,
        inputs_s=inputs_s,
        build_s=sel.build_s,
        solve_s=sel.solve_s,
        cpu_s=cpu_s,
        note="; ".join(sel.notes),
        objective_value=sel.objective_value,
        case=case,
        method=label,
    )
    return fig, sel


def run_dr_selection_bench(
    n_buildings: int = 1000,
    steps: tuple[int, ...] = (8, 96),
    *,
    pyomo_anchor: bool = True,
    objective: Objective = "min_cost",
    time_limit_s: float = 120.0,
    whole_anchor: bool = True,
) -> list[DrBenchFigure]:
    """Met and partial at every size: `auto`, then the anchors of the same run (module doc)."""
    figures: list[DrBenchFigure] = []
    for n in steps:
        for case in ("met", "partial"):
            methods = ["auto"]
            if whole_anchor:
                methods.append("whole-before")
                if n > 8:
                    methods.append("whole")
            if n <= 8:
                methods.append("prices")
            for method in methods:
                fig, _ = bench_case(
                    n_buildings,
                    n,
                    share=share_of(case, n),
                    objective=objective,
                    time_limit_s=time_limit_s,
                    method=method,
                    case=case,
                )
                figures.append(fig)
    if pyomo_anchor:
        n = min(steps)
        figures.append(
            bench_case(
                n_buildings,
                n,
                builder="pyomo",
                share=share_of("met", n),
                objective=objective,
                time_limit_s=time_limit_s,
                case="met",
                method="pyomo",
            )[0]
        )
    return figures


TARGETS_S = {8: 2.0, 96: 10.0}


def format_figures(figures: list[DrBenchFigure]) -> str:
    """The figures as a plain table, with the targets and each row's CPU seconds against `auto` of its case."""
    lines = [
        f"{'buildings x sources x steps':<24}{'case':>8}{'method':>13}{'status':>9}{'route':>18}{'unmet kWh':>11}"
        f"{'objective':>14}{'inputs s':>9}{'build s':>8}{'solve s':>9}{'cpu s':>8}{'target s':>10}"
    ]
    auto = {(f.steps, f.case): f for f in figures if f.method == "auto"}
    for f in figures:
        target = TARGETS_S.get(f.steps)
        lines.append(
            f"{f'{f.buildings:,} x 4 x {f.steps}':<24}{f.case:>8}{f.method:>13}{f.status:>9}{f.route:>18}"
            f"{f.unmet_kwh:>11.3f}{f.objective_value:>14.9g}{f.inputs_s:>9.2f}{f.build_s:>8.2f}{f.solve_s:>9.2f}"
            f"{f.cpu_s:>8.2f}{(f'<= {target:g}' if target and f.method == 'auto' else ''):>10}"
        )
    for f in figures:
        a = auto.get((f.steps, f.case))
        if a is not None and f is not a:
            lines.append(
                f"{f.steps} steps {f.case}: {f.method} / auto CPU s {f.cpu_s:.2f} / {a.cpu_s:.2f} ="
                f" {f.cpu_s / max(a.cpu_s, 1e-9):.2f}x; objective {f.objective_value:.9g} vs {a.objective_value:.9g}"
            )
        if f.method == "pyomo" and a is not None:
            lines.append(
                f"pyomo / numpy build time at {f.steps} steps: {f.build_s / max(a.build_s, 1e-9):.1f}x"
            )
    lines.extend(f"{f.steps} steps {f.case} {f.method}: {f.note}" for f in figures if f.note)
    return "\n".join(lines)
