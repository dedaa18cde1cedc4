"""The backtest's result as people read it: a markdown table and a figure (offline HTML, no CDN).

Both take the JSON dict `BacktestResult.to_json` makes (the same one `GET /forecast/quality`
serves), so a report can be redrawn from a saved result without rerunning the backtest.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud_controller.forecast.baseline import LEVEL_FADE_H

__all__ = ["QualityOutputs", "markdown_table", "write_figure", "write_quality_outputs"]

_COLUMNS = (
    ("pinball_p10_kw", "pinball p10"),
    ("pinball_p50_kw", "pinball p50"),
    ("pinball_p90_kw", "pinball p90"),
    ("coverage_p10_p90", "p10–p90 coverage"),
    ("mae_p50_kw", "MAE p50"),
    ("rmse_p50_kw", "RMSE p50"),
    ("band_width_kw", "band width"),
)


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "–"
    return f"{100 * float(v):.1f} %" if pct else f"{float(v):.3f}"


def markdown_table(result: dict[str, Any]) -> str:
    """Scores per horizon bucket and forecast, then skill vs each persistence reference."""
    cfg = result["config"]
    head = (
        f"{cfg['sites']} sites, {len(result['days'])} days, seed {cfg['seed']}, year {cfg['year']}, "
        f"a forecast every {cfg['origin_every_steps']} × {cfg['period_s'] / 60:.0f} min, "
        f"{result['origins']} forecasts per kind; losses in kW per site and 15-min period."
    )
    if cfg.get("fade_h") is not None:
        head += (
            f" What-if: the baseline's level fades over {cfg['fade_h']} h (the planner's: {LEVEL_FADE_H} h)."
        )
    lines = [head, "", "| horizon | forecast | " + " | ".join(c[1] for c in _COLUMNS) + " |"]
    lines.append("|---|---|" + "---:|" * len(_COLUMNS))
    for b in result["buckets"]:
        for name, m in b["metrics"].items():
            cells = [_fmt(m.get(k), pct=k.startswith("coverage")) for k, _ in _COLUMNS]
            lines.append(f"| {b['bucket']} | {name} | " + " | ".join(cells) + " |")
    refs = list(next(iter(result["buckets"]))["skill"]["baseline"])
    lines += ["", "Skill = 1 − loss / loss of the reference (mean pinball of p10/p50/p90; MAE of p50):", ""]
    lines.append("| horizon | forecast | " + " | ".join(f"vs {r} (pinball / MAE)" for r in refs) + " |")
    lines.append("|---|---|" + "---:|" * len(refs))
    for b in result["buckets"]:
        for f, per_ref in b["skill"].items():
            cells = [
                f"{_fmt(per_ref[r].get('pinball_mean_kw'), True)} / {_fmt(per_ref[r].get('mae_p50_kw'), True)}"
                for r in refs
            ]
            lines.append(f"| {b['bucket']} | {f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_figure(result: dict[str, Any], path: Path) -> Path:
    """Mean pinball loss and p10–p90 coverage per horizon step, every forecast and reference (HTML).

    Interactive plotly, offline: the HTML loads `plotly.min.js` written beside it (plotly's
    own bundle, as the study's figures do), never a CDN.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    period_h = float(result["config"]["period_s"]) / 3600.0
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("Mean pinball loss per horizon step (kW)", "Actuals inside p10–p90 (%)"),
    )
    palette = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
    for i, (name, series) in enumerate(result["per_step"].items()):
        hours = [k * period_h for k in range(len(series["pinball_mean_kw"]))]
        line = {"color": palette[i % len(palette)]}
        fig.add_trace(
            go.Scatter(x=hours, y=series["pinball_mean_kw"], name=name, legendgroup=name, line=line), 1, 1
        )
        if not name.startswith("persistence"):
            cov = [None if v is None else 100 * v for v in series["coverage_p10_p90"]]
            fig.add_trace(
                go.Scatter(x=hours, y=cov, name=name, legendgroup=name, showlegend=False, line=line), 1, 2
            )
    nominal = 100 * float(result["method"]["nominal_coverage"])
    fig.add_hline(y=nominal, line_dash="dash", annotation_text=f"nominal {nominal:.0f} %", row=1, col=2)
    fig.update_xaxes(title_text="hours ahead")
    fig.update_yaxes(range=[0, 100], row=1, col=2)
    cfg = result["config"]
    fig.update_layout(
        title=f"Site baselines backtested: {cfg['sites']} sites, {len(result['days'])} days, seed {cfg['seed']}",
        height=460,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(path, include_plotlyjs="directory")
    return path


@dataclass(frozen=True)
class QualityOutputs:
    """The files one backtest wrote."""

    json_path: Path
    markdown_path: Path
    figure_path: Path
    published: Path | None


def write_quality_outputs(
    result: dict[str, Any], out: Path, *, publish: Path | None = None
) -> QualityOutputs:
    """`forecast_quality.json`, `.md` and `.html` into `out`; the JSON also copied to `publish` if given."""
    out.mkdir(parents=True, exist_ok=True)
    js = out / "forecast_quality.json"
    js.write_text(json.dumps(result, indent=1), encoding="utf-8")
    md = out / "forecast_quality.md"
    md.write_text(markdown_table(result), encoding="utf-8")
    html = write_figure(result, out / "forecast_quality.html")
    if publish is not None:
        publish.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(js, publish)
    return QualityOutputs(js, md, html, publish)
