"""The demo's summary: congestion with vs. without control, commands, telemetry; JSON, text, plot.

Pure functions over interval series so the figures are tested without running a demo.
With a physical congestion the summary names the congested element, its rating (kVA) and
its loading with and without control (peak %, intervals over 100 %, kVAh above the
rating: loading % × rating, pandapower's current-based loading); with the constructed
threshold, the HV/MV import against it. The picture (demo.png, and what the controller did
per interval) is `report_figure.py`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from gridflex.loop.grid_truth import TruthInterval, count_overloads
from gridflex.loop.report_figure import (  # the picture (demo.png): callers import it from here too
    OPERATOR_TIMEZONE,
    CapCommand,
    ControlActions,
    control_actions,
    figure,
    plot,
)

__all__ = [
    "OPERATOR_TIMEZONE",
    "CapCommand",
    "CommandFigures",
    "ControlActions",
    "DemoSummary",
    "ElementFigures",
    "RunFigures",
    "TelemetryFigures",
    "control_actions",
    "figure",
    "plot",
    "run_figures",
    "write_outputs",
]


@dataclass(frozen=True)
class ElementFigures:
    """One congested element's loading over a run, against its own rating."""

    element: str
    rating_kva: float
    peak_loading_pct: float
    overloaded_intervals: int  # loading > 100 %
    overload_kvah: float  # (loading − 100 %) × rating, summed over the intervals above it


@dataclass(frozen=True)
class RunFigures:
    """Grid-truth figures of one run over the demo window.

    `overloaded_intervals` counts the congestion the run is judged by: the element's
    intervals over its rating where there is one, else the HV/MV import over the threshold.
    """

    hvmv_peak_kw: float
    hvmv_peak_pct_of_threshold: float | None  # None without a threshold
    overloaded_intervals: int
    overload_energy_kwh: float  # energy above the threshold (0 without one)
    station_peak_loading_pct: dict[str, float]
    energy_kwh: float
    v_min_pu: float
    element: ElementFigures | None = None
    line_peak_loading_pct: float = 0.0  # the most loaded line of the region, % of its ampacity
    line_peak: str = ""


@dataclass(frozen=True)
class CommandFigures:
    """The controller's commands issued before the end of the run, by how the agents answered."""

    sent: int = 0
    applied: int = 0
    clamped: int = 0
    rejected: int = 0
    expired: int = 0
    failed: int = 0
    missing: int = 0

    @property
    def acked_ok_pct(self) -> float:
        """Share of sent commands acknowledged `applied` or `clamped`."""
        return 100.0 * (self.applied + self.clamped) / self.sent if self.sent else 0.0


@dataclass(frozen=True)
class TelemetryFigures:
    """Telemetry the agents queued vs. what the controller stored, with its duplicates and gaps."""

    produced: int  # samples the agents accepted into their queues
    delivered: int  # distinct (site, seq) the controller stored
    duplicates: int = 0
    gaps: int = 0

    @property
    def lost(self) -> int:
        """Samples queued but never stored."""
        return max(0, self.produced - self.delivered)


@dataclass(frozen=True)
class DemoSummary:
    """Everything the demo reports: both runs' grid truth, commands, telemetry, wall time."""

    sites: int
    start: datetime
    interval_min: float
    intervals: int
    threshold_kw: float | None  # the constructed HV/MV threshold; None with a physical congestion
    no_control: RunFigures
    control: RunFigures
    commands: CommandFigures
    telemetry: TelemetryFigures
    wall_s: float
    notes: list[str] = field(default_factory=list)
    element: str | None = None  # the congested element, by name
    element_rating_kva: float = 0.0

    @property
    def overload_reduction_pct(self) -> float:
        """Share of the no-control overloaded intervals that control removed (0 if there were none)."""
        before = self.no_control.overloaded_intervals
        if before == 0:
            return 0.0
        return 100.0 * (before - self.control.overloaded_intervals) / before

    def to_json(self) -> str:
        """The summary as indented JSON, with the derived percentages and the lost count added."""
        doc = asdict(self)
        doc["start"] = self.start.isoformat()
        doc["overload_reduction_pct"] = round(self.overload_reduction_pct, 1)
        doc["commands"]["acked_ok_pct"] = round(self.commands.acked_ok_pct, 2)
        doc["telemetry"]["lost"] = self.telemetry.lost
        return json.dumps(doc, indent=2)


def element_figures(
    loading_pct: Sequence[float], element: str, rating_kva: float, interval_h: float
) -> ElementFigures:
    """Peak, intervals over 100 % and kVAh above the rating of one element's loading series."""
    if not loading_pct:
        raise ValueError("no intervals")
    pct = np.asarray(loading_pct, dtype=float)
    return ElementFigures(
        element=element,
        rating_kva=float(rating_kva),
        peak_loading_pct=float(pct.max()),
        overloaded_intervals=int(np.sum(pct > 100.0)),
        overload_kvah=float(np.clip(pct - 100.0, 0.0, None).sum() / 100.0 * rating_kva * interval_h),
    )


def run_figures(
    truth: Sequence[TruthInterval],
    threshold_kw: float | None,
    interval_h: float,
    *,
    element: str | None = None,
    rating_kva: float = 0.0,
) -> RunFigures:
    """Peak, overloaded intervals and overload energy of one run's grid-truth series.

    With `element` (an MV/LV station's name), its loading against its rating is the
    congestion counted; else the HV/MV import against `threshold_kw`.
    """
    if not truth:
        raise ValueError("no intervals")
    if element is None and threshold_kw is None:
        raise ValueError("need a threshold or an element")
    root = np.array([t.root_p_kw for t in truth])
    stations = truth[0].station_loading_pct.keys()
    elem = None
    if element is not None:
        if element not in stations:
            raise ValueError(f"element {element!r} not among the stations ({', '.join(stations)})")
        elem = element_figures(
            [t.station_loading_pct[element] for t in truth], element, rating_kva, interval_h
        )
    worst_line = max(truth, key=lambda t: t.line_loading_max_pct)
    return RunFigures(
        hvmv_peak_kw=float(root.max()),
        hvmv_peak_pct_of_threshold=float(100.0 * root.max() / threshold_kw) if threshold_kw else None,
        overloaded_intervals=(
            elem.overloaded_intervals if elem is not None else count_overloads(root, float(threshold_kw or 0))
        ),
        overload_energy_kwh=float(np.clip(root - threshold_kw, 0.0, None).sum() * interval_h)
        if threshold_kw
        else 0.0,
        station_peak_loading_pct={s: max(t.station_loading_pct[s] for t in truth) for s in stations},
        energy_kwh=float(root.sum() * interval_h),
        v_min_pu=min(t.v_min_pu for t in truth),
        element=elem,
        line_peak_loading_pct=worst_line.line_loading_max_pct,
        line_peak=worst_line.line_max,
    )


def _congestion_rows(summary: DemoSummary) -> list[tuple[str, str, str]]:
    nc, c = summary.no_control, summary.control
    if nc.element is not None and c.element is not None:
        e, ec = nc.element, c.element
        return [
            (
                f"{e.element} peak loading (% of {e.rating_kva:.0f} kVA)",
                f"{e.peak_loading_pct:.1f}",
                f"{ec.peak_loading_pct:.1f}",
            ),
            (f"{e.element} intervals over 100 %", str(e.overloaded_intervals), str(ec.overloaded_intervals)),
            (f"{e.element} kVAh above its rating", f"{e.overload_kvah:.1f}", f"{ec.overload_kvah:.1f}"),
            ("HV/MV import, peak (kW)", f"{nc.hvmv_peak_kw:.1f}", f"{c.hvmv_peak_kw:.1f}"),
        ]
    return [
        ("HV/MV peak import (kW)", f"{nc.hvmv_peak_kw:.1f}", f"{c.hvmv_peak_kw:.1f}"),
        (
            "peak, % of congestion threshold",
            f"{nc.hvmv_peak_pct_of_threshold or 0.0:.1f}",
            f"{c.hvmv_peak_pct_of_threshold or 0.0:.1f}",
        ),
        ("overloaded intervals", str(nc.overloaded_intervals), str(c.overloaded_intervals)),
        ("energy above threshold (kWh)", f"{nc.overload_energy_kwh:.2f}", f"{c.overload_energy_kwh:.2f}"),
    ]


def render_markdown(summary: DemoSummary) -> str:
    """The summary as a short Markdown report (also printed by `gridflex demo`)."""
    nc, c = summary.no_control, summary.control
    rows = [
        *_congestion_rows(summary),
        *(
            (
                f"MV/LV {name} peak loading (%)",
                f"{nc.station_peak_loading_pct[name]:.1f}",
                f"{c.station_peak_loading_pct[name]:.1f}",
            )
            for name in nc.station_peak_loading_pct
        ),
        (
            "most loaded line, peak (% of ampacity)",
            f"{nc.line_peak_loading_pct:.1f}",
            f"{c.line_peak_loading_pct:.1f}",
        ),
        ("energy drawn (kWh)", f"{nc.energy_kwh:.1f}", f"{c.energy_kwh:.1f}"),
        ("lowest voltage (pu)", f"{nc.v_min_pu:.4f}", f"{c.v_min_pu:.4f}"),
    ]
    if summary.element is not None:
        what = (
            f"congested element {summary.element} (MV/LV transformer, {summary.element_rating_kva:.0f} kVA), "
            "judged by its own rating"
        )
    else:
        what = f"congestion threshold {summary.threshold_kw or 0.0:.1f} kW at the HV/MV transformer"
    cmd, tel = summary.commands, summary.telemetry
    lines = [
        "# GridFlex demo summary",
        "",
        f"{summary.sites} simulated buildings, {summary.intervals} intervals of {summary.interval_min:g} min from "
        f"{summary.start.isoformat()}, {what} (wall time {summary.wall_s:.0f} s).",
        "",
        "| grid truth (AC power flow) | no control | with control |",
        "|---|---:|---:|",
        *(f"| {a} | {b} | {d} |" for a, b, d in rows),
        "",
        f"Overloaded intervals reduced by **{summary.overload_reduction_pct:.0f} %**.",
        "",
        f"Commands: {cmd.sent} sent, {cmd.applied} applied, {cmd.clamped} clamped, {cmd.rejected} rejected, "
        f"{cmd.expired} expired, {cmd.failed} failed, {cmd.missing} without ack ({cmd.acked_ok_pct:.1f} % applied or clamped).",
        "",
        f"Telemetry: {tel.produced} samples produced, {tel.delivered} stored, {tel.lost} lost, "
        f"{tel.duplicates} duplicates dropped, {tel.gaps} gaps.",
    ]
    if summary.notes:
        lines += ["", *(f"- {n}" for n in summary.notes)]
    return "\n".join(lines) + "\n"


def write_outputs(
    summary: DemoSummary,
    out_dir: Path,
    times: Sequence[datetime],
    series_kw: Mapping[str, Sequence[float]],
    actions: ControlActions | None = None,
) -> dict[str, Path]:
    """summary.json, summary.md, demo.png and series.csv (with `actions`: their columns too) under `out_dir`.

    `series_kw`: the HV/MV import (kW) with a threshold, the element's loading (%) with an element.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "summary.json",
        "markdown": out_dir / "summary.md",
        "plot": out_dir / "demo.png",
        "series": out_dir / "series.csv",
    }
    paths["json"].write_text(summary.to_json() + "\n")
    paths["markdown"].write_text(render_markdown(summary))
    limit = 100.0 if summary.element is not None else float(summary.threshold_kw or 0.0)
    plot(paths["plot"], times, series_kw, limit, actions, element=summary.element)
    names = list(series_kw)
    extra = ",battery_soc_pct_mean,ev_capped,hp_capped" if actions is not None else ""
    lines = ["time," + ",".join(names) + extra]
    for i, t in enumerate(times):
        row = t.isoformat() + "," + ",".join(f"{series_kw[n][i]:.3f}" for n in names)
        if actions is not None:
            row += f",{actions.soc_pct[i]:.1f},{actions.ev_capped[i]},{actions.hp_capped[i]}"
        lines.append(row)
    paths["series"].write_text("\n".join(lines) + "\n")
    return paths
