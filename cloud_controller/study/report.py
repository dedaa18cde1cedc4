"""Study outputs: figures (PNG + interactive HTML) and `report.md` beside the Schutterwald study's results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from cloud_controller.study.study import TOL_KW, StudyResult

LABELS = {
    "status_quo": "Status quo 2024",
    "no_control": "2030, no control",
    "stor": "Stor",
    "stor_cura": "Stor+CurA",
    "stor_curb": "Stor+CurB",
    "stor_proa": "Stor+ProA",
    "stor_proa_prob": "Stor+ProA+ProB",
    "stor_proa_prob_curb": "Stor+ProA+ProB+CurB",
    "grid_opf": "Grid-aware OPF (beyond)",
    "mpc": "MPC, oracle forecast (beyond)",
}

#: The HTML figures load plotly.js from a `plotly.min.js` written beside them (plotly's own
#: bundle), not from a CDN: the study is read offline too, and one shared 4.8 MB file beats
#: embedding it into every figure.
PLOTLYJS = "directory"

# The Schutterwald study's stated results (critical grid unless said), as fractions of load violations resolved.
PAPER = {
    "stor": "35 % of load violations resolved (critical grid); feed-in violations mitigated",
    "stor_cura": "+11 % over Stor",
    "stor_curb": "+1 % over Stor; can be detrimental (cold load pickup) in safe/near-critical grids",
    "stor_proa": "marginal over Stor",
    "stor_proa_prob": "up to 90 % of the remaining load violations resolved",
    "stor_proa_prob_curb": "all load violations resolved at all three stress levels",
}


def _violation_grid(p_root_kw: np.ndarray, limit_kw: float, index: Any) -> tuple[np.ndarray, list[int]]:
    """(day-of-year × time-of-day) matrix: +1 load violation, -1 feed-in violation, 0 none."""
    spd = 96
    n_days = len(p_root_kw) // spd
    v = np.where(p_root_kw > limit_kw + TOL_KW, 1, np.where(p_root_kw < -limit_kw - TOL_KW, -1, 0))
    days = [int(index[d * spd].dayofyear) for d in range(n_days)]
    return v[: n_days * spd].reshape(n_days, spd), days


def figure_heatmap(res: StudyResult, out: Path, stress: str = "critical") -> list[Path]:
    """The Schutterwald study Fig. 8: violations by day of year and time of day, without and with storage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    limit = res.limits_kw[stress]
    idx = res.inputs.prof.index
    panels = [s for s in ("no_control", "stor", "stor_proa_prob_curb") if res.has(s, stress)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 5), sharey=True, squeeze=False)
    pfig = make_subplots(rows=1, cols=len(panels), subplot_titles=[LABELS[p] for p in panels])
    for i, sc in enumerate(panels):
        run = res.run_for(sc, stress)
        assert run is not None
        grid, days = _violation_grid(run.p_root_kw, limit, idx)
        ax = axes[0][i]
        ax.imshow(
            grid.T, aspect="auto", cmap="coolwarm_r", vmin=-1, vmax=1, origin="lower", interpolation="nearest"
        )
        ax.set_title(f"{LABELS[sc]}\n{int((grid == 1).sum())} load / {int((grid == -1).sum())} feed-in")
        ax.set_xlabel("day (index into the run)" if res.quick else "day of year")
        ax.set_yticks(range(0, 96, 16), [f"{h:02d}:00" for h in range(0, 24, 4)])
        pfig.add_trace(
            go.Heatmap(
                z=grid.T,
                x=days,
                y=[f"{q // 4:02d}:{q % 4 * 15:02d}" for q in range(96)],
                zmin=-1,
                zmax=1,
                colorscale=[[0, "#d62728"], [0.5, "#f0f0f0"], [1, "#1f77b4"]],
                showscale=False,
            ),
            row=1,
            col=i + 1,
        )
    axes[0][0].set_ylabel("time of day (UTC)")
    fig.suptitle(f"HV/MV violations, {stress} grid (blue = load, red = feed-in)")
    fig.tight_layout()
    png = out / f"fig8_violations_{stress}.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    html = out / f"fig8_violations_{stress}.html"
    pfig.update_layout(
        title=f"HV/MV violations by day and time of day, {stress} grid (blue load, red feed-in)"
    )
    pfig.write_html(html, include_plotlyjs=PLOTLYJS)
    return [png, html]


def figure_bars(summary: dict[str, Any], out: Path) -> list[Path]:
    """The Schutterwald study Fig. 9: load and feed-in violation counts per scenario and stress level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import plotly.graph_objects as go

    stresses = list(summary["results"])
    scenarios = list(dict.fromkeys(s for st in stresses for s in summary["results"][st] if s != "status_quo"))
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharey=False)
    width = 0.8 / len(scenarios)
    pfig = go.Figure()
    for j, kind in enumerate(("load_violations", "feed_in_violations")):
        ax = axes[j]
        for i, sc in enumerate(scenarios):
            vals = [summary["results"][st].get(sc, {}).get(kind, np.nan) for st in stresses]
            ax.bar(np.arange(len(stresses)) + i * width, vals, width, label=LABELS[sc])
            if j == 0:
                pfig.add_trace(go.Bar(name=LABELS[sc], x=stresses, y=vals))
        ax.set_xticks(np.arange(len(stresses)) + 0.4 - width / 2, stresses)
        ax.set_title(kind.replace("_", " ") + " (15-min intervals)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    png = out / "fig9_violations_by_scenario.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    html = out / "fig9_violations_by_scenario.html"
    pfig.update_layout(
        barmode="group", title="Load violations at the HV/MV station per scenario and stress level"
    )
    pfig.write_html(html, include_plotlyjs=PLOTLYJS)
    return [png, html]


def figure_curb_day(res: StudyResult, out: Path, stress: str = "critical") -> list[Path]:
    """The Schutterwald study Fig. 10: one congested day with Stor vs Stor+CurB (cold load pickup)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stor_run = res.run_for("stor", stress)
    curb = res.run_for("stor_curb", stress)
    if stor_run is None or curb is None:
        return []
    limit = res.limits_kw[stress]
    stor = stor_run.p_root_kw
    diff = np.abs(curb.extras["p_hp_kw"] - stor_run.extras["p_hp_kw"])
    spd = 96
    n_days = len(stor) // spd
    day = int(np.argmax(diff[: n_days * spd].reshape(n_days, spd).sum(axis=1)))
    sl = slice(day * spd, (day + 1) * spd)
    idx = res.inputs.prof.index[sl]
    hours = np.arange(spd) / 4
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    a1.plot(hours, stor[sl], label="Stor")
    a1.plot(hours, curb.p_root_kw[sl], label="Stor+CurB")
    a1.axhline(limit, color="k", ls="--", lw=1, label="limit")
    a1.set_ylabel("HV/MV load (kW)")
    a1.legend()
    a2.plot(hours, stor_run.extras["p_hp_kw"][sl], label="heat pumps, Stor")
    a2.plot(hours, curb.extras["p_hp_kw"][sl], label="heat pumps, Stor+CurB")
    a2.set_ylabel("heat-pump power (kW)")
    a2.set_xlabel(f"hour of {idx[0].date()} (UTC)")
    a2.legend()
    fig.suptitle(f"CurB: heat pumps at 30 % for 2 h, deferred heat recovered within 6 h ({stress} grid)")
    fig.tight_layout()
    png = out / "fig10_curb_day.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return [png]


def write_report(res: StudyResult, summary: dict[str, Any], out: Path, figures: list[Path]) -> Path:
    """report.md: our counts beside the paper's statements, and why they differ."""
    cfg = res.inputs.cfg
    lines = [
        "# GridFlex study: the Schutterwald rolling-horizon OPF study (Energies 2024, 17(17), 4217) reproduced",
        "",
        f"Period: {summary['period'][0]} – {summary['period'][1]} ({summary['steps']} steps of 15 min"
        + (", the --quick weeks" if res.quick else "")
        + f"); wall time {summary['wall_s']} s.",
        f"Households: {json.dumps(summary['households'])}.",
        f"Status-quo peak at the HV/MV station: {summary['status_quo_peak_kw']} kW (DC, lossless); "
        f"limits: {json.dumps(summary['limits_kw'])} kW (status-quo peak = stress × limit); "
        f"on the AC station load (out of the HV/MV transformer): {json.dumps(summary.get('limits_ac_kw', {}))} kW.",
        "",
        "## Assumptions (the Schutterwald study's Table 1 is not in our copy; these are our defaults, all in the YAML)",
        "",
        f"- 2024: PV {cfg.sizes.pv_2024_kwp} kWp on {cfg.pv_share_2024:.0%} of households per station.",
        f"- 2030: PV {cfg.sizes.pv_2030_kwp} kWp, EV {cfg.sizes.ev_p_max_kw} kW, batteries {cfg.sizes.battery_kwh} kWh / "
        f"{cfg.sizes.battery_kw} kW (only with PV), thermal stores {cfg.sizes.thermal_store_kwh} kWh (only with PV and HP).",
        "- Shares by station role: "
        + "; ".join(f"{k}: {v.model_dump()}" for k, v in cfg.mix.items())
        + f"; roles {json.dumps(cfg.station_roles)}.",
        f"- Household demand {cfg.demand.e_avg_kwh:.0f} kWh/a × area/{cfg.demand.area_avg_m2:.0f} m²; heat "
        f"{cfg.demand.heat_kwh_per_m2} kWh/m²·a (Efficiency House 40); profiles from the `profiles` package "
        "(H0 with fluctuations and shifts, Zhou PV model on seeded clear-sky × clouds, agent-based EV "
        "sessions, degree-day heat with time-dependent COP); seeded synthetic weather, not MERRA-2.",
        f"- CurA: EVs at {cfg.cura.ev_cap_kw} kW from onset to midnight, backlog at full power next morning. "
        f"CurB: HPs at {cfg.curb.hp_share:.0%} for {cfg.curb.duration_h} h, deferred heat over {cfg.curb.recovery_h} h. "
        f"ProA: grid cost {cfg.proa.c_import_low} (vs 1.0) in the lowest-forecast {cfg.proa.window_h} h within "
        f"{cfg.proa.search_h} h before onset, HV/MV held under {cfg.proa.headroom:.0%} of the limit while "
        f"pre-charging. ProB: discharge priced at {cfg.prob.w_discharge_hold} from that window to the onset.",
        f"- A violation is a 15-min interval whose HV/MV load exceeds the limit by more than {TOL_KW} kW "
        "(load) or whose feed-in exceeds it (feed-in), counted on the OPF's lossless model; the AC "
        "power flow's counts are given beside them.",
        "",
        "## Results",
        "",
    ]
    for st, table in summary["results"].items():
        lines += [
            f"### {st} (limit {summary['limits_kw'][st]} kW)",
            "",
            "| scenario | load viol. | feed-in viol. | AC load viol. | resolved vs 2030 | AC resolved | resolved of Stor's | max load % | AC/DC gap mean % | the Schutterwald study says |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for sc, row in table.items():
            lines.append(
                f"| {LABELS[sc]} | {row['load_violations']} | {row['feed_in_violations']} | "
                f"{row.get('ac_load_violations', '–')} | {_pct(row.get('load_violations_resolved_pct'))} | "
                f"{_pct(row.get('ac_load_violations_resolved_pct'))} | "
                f"{_pct(row.get('of_stor_remaining_resolved_pct')) if sc.startswith(('stor_', 'grid', 'mpc')) else '–'} | "
                f"{row['max_load_pct']} | {row.get('ac_dc_mean_rel_diff_pct', '–')} | {PAPER.get(sc, '') if st == 'critical' else ''} |"
            )
        lines.append("")
    lines += _discussion(summary)
    lines += ["## Figures", ""] + [f"- [{p.name}]({p.name})" for p in figures] + [""]
    lines += [f"![{p.stem}]({p.name})" for p in figures if p.suffix == ".png"]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _pct(v: Any) -> str:
    return "–" if v is None else f"{v} %"


def _discussion(summary: dict[str, Any]) -> list[str]:
    """Compare with the Schutterwald study's statements, with the numbers of this run."""
    res = summary["results"].get("critical") or next(iter(summary["results"].values()))
    out = ["## Against the Schutterwald study", ""]

    def lv(sc: str) -> int | None:
        return res[sc]["load_violations"] if sc in res else None

    nc, stor = lv("no_control"), lv("stor")
    if not nc or stor is None:
        return out

    def pp(sc: str) -> float:
        """Share of the 2030 load violations a scenario resolves, in % (the paper's measure)."""
        v = lv(sc)
        return 100.0 * (nc - v) / nc if v is not None else float("nan")

    out.append(
        f"- Stor resolves {pp('stor'):.0f} % of the 2030 load violations (paper: 35 %). Storage "
        "optimised for self-consumption is empty before the winter evening peak: the same mechanism."
    )
    for sc, paper in (
        ("stor_cura", "+11 points"),
        ("stor_curb", "+1 point"),
        ("stor_proa", "marginal"),
        ("stor_proa_prob", "up to 90 % resolved"),
        ("stor_proa_prob_curb", "all resolved"),
    ):
        if lv(sc) is None:
            continue
        out.append(
            f"- {LABELS[sc]}: {pp(sc):.0f} % resolved, {pp(sc) - pp('stor'):+.0f} points over Stor "
            f"(paper: {paper})."
        )
    for sc in ("grid_opf", "mpc"):
        if lv(sc) is not None:
            ac = res[sc].get("ac_load_violations_resolved_pct")
            out.append(
                f"- {LABELS[sc]}: {pp(sc):.0f} % resolved"
                + (f" ({ac} % by the AC power flow)." if ac is not None else ".")
            )
    worst = res["no_control"].get("energy_over_limit_kwh")
    if worst:
        out.append(
            f"- Energy above the limit without control: {worst:,.0f} kWh over the period "
            f"({res['stor'].get('energy_over_limit_kwh', 0):,.0f} kWh with Stor), against "
            f"{summary['households']['battery']} batteries."
        )
    out += [
        "",
        "Why our figures differ from the paper's:",
        "- Profiles are synthetic (seeded weather, H0 load, our EV agent model) instead of MERRA-2 "
        "and the paper's datasets; the 2030 adoption rates are our defaults (Table 1 is not in our copy). "
        "The size of the 2030 load growth relative to today's peak decides how much storage can cover.",
        "- ProB lets storage discharge only for its own household (self-consumption) from the onset. "
        "Where the evening excess lasts longer than a battery's energy or comes from households "
        "without storage, violations remain; the grid-aware OPF lets batteries export to cover "
        "neighbours, which the paper's cost function does not.",
        "- CurB reduces heat demand only where the heat pumps run above 30 % of their rating; with "
        "oversized heat pumps (sizing factor in the YAML) the effect is small, as the paper found.",
        "- MPC uses the realised profiles as its forecast (an upper bound); the per-step OPF only "
        "sees the day-ahead pseudo-forecast through the policies.",
        "",
    ]
    return out
