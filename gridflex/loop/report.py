"""The demo's summary: congestion with vs. without control, commands, telemetry; JSON, text, plot.

Pure functions over interval series so the figures are tested without running a demo.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from gridflex.loop.grid_truth import TruthInterval, count_overloads

__all__ = ["CommandFigures", "DemoSummary", "RunFigures", "TelemetryFigures", "run_figures", "write_outputs"]


@dataclass(frozen=True)
class RunFigures:
    """Grid-truth figures of one run over the demo window."""

    hvmv_peak_kw: float
    hvmv_peak_pct_of_threshold: float
    overloaded_intervals: int
    overload_energy_kwh: float  # energy above the threshold
    station_peak_loading_pct: dict[str, float]
    energy_kwh: float
    v_min_pu: float


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
    threshold_kw: float
    no_control: RunFigures
    control: RunFigures
    commands: CommandFigures
    telemetry: TelemetryFigures
    wall_s: float
    notes: list[str] = field(default_factory=list)

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


def run_figures(truth: Sequence[TruthInterval], threshold_kw: float, interval_h: float) -> RunFigures:
    """Peak, overloaded intervals and overload energy of one run's grid-truth series."""
    if not truth:
        raise ValueError("no intervals")
    root = np.array([t.root_p_kw for t in truth])
    stations = truth[0].station_loading_pct.keys()
    return RunFigures(
        hvmv_peak_kw=float(root.max()),
        hvmv_peak_pct_of_threshold=float(100.0 * root.max() / threshold_kw),
        overloaded_intervals=count_overloads(root, threshold_kw),
        overload_energy_kwh=float(np.clip(root - threshold_kw, 0.0, None).sum() * interval_h),
        station_peak_loading_pct={s: max(t.station_loading_pct[s] for t in truth) for s in stations},
        energy_kwh=float(root.sum() * interval_h),
        v_min_pu=min(t.v_min_pu for t in truth),
    )


def render_markdown(summary: DemoSummary) -> str:
    """The summary as a short Markdown report (also printed by `gridflex demo`)."""
    nc, c = summary.no_control, summary.control
    rows = [
        ("HV/MV peak import (kW)", f"{nc.hvmv_peak_kw:.1f}", f"{c.hvmv_peak_kw:.1f}"),
        (
            "peak, % of congestion threshold",
            f"{nc.hvmv_peak_pct_of_threshold:.1f}",
            f"{c.hvmv_peak_pct_of_threshold:.1f}",
        ),
        ("overloaded intervals", str(nc.overloaded_intervals), str(c.overloaded_intervals)),
        ("energy above threshold (kWh)", f"{nc.overload_energy_kwh:.2f}", f"{c.overload_energy_kwh:.2f}"),
        *(
            (
                f"MV/LV {name} peak loading (%)",
                f"{nc.station_peak_loading_pct[name]:.1f}",
                f"{c.station_peak_loading_pct[name]:.1f}",
            )
            for name in nc.station_peak_loading_pct
        ),
        ("energy drawn (kWh)", f"{nc.energy_kwh:.1f}", f"{c.energy_kwh:.1f}"),
        ("lowest voltage (pu)", f"{nc.v_min_pu:.4f}", f"{c.v_min_pu:.4f}"),
    ]
    cmd, tel = summary.commands, summary.telemetry
    lines = [
        "# GridFlex demo summary",
        "",
        f"{summary.sites} simulated buildings, {summary.intervals} intervals of {summary.interval_min:g} min from "
        f"{summary.start.isoformat()}, congestion threshold {summary.threshold_kw:.1f} kW at the HV/MV transformer "
        f"(wall time {summary.wall_s:.0f} s).",
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


def plot(
    out: Path,
    times: Sequence[datetime],
    series_kw: Mapping[str, Sequence[float]],
    threshold_kw: float,
) -> Path:
    """HV/MV import with and without control against the threshold (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=110)
    x = mdates.date2num(list(times))  # type: ignore[no-untyped-call]
    for label, values in series_kw.items():
        ax.step(x, list(values), where="post", label=label, linewidth=1.6)
    ax.xaxis_date()
    ax.axhline(threshold_kw, color="tab:red", linestyle="--", linewidth=1.2, label="congestion threshold")
    ax.set_ylabel("HV/MV import (kW)")
    ax.set_xlabel("time (UTC)")
    ax.set_title("Grid truth: HV/MV transformer import, with and without GridFlex control")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def write_outputs(
    summary: DemoSummary,
    out_dir: Path,
    times: Sequence[datetime],
    series_kw: Mapping[str, Sequence[float]],
) -> dict[str, Path]:
    """summary.json, summary.md, demo.png and series.csv under `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out_dir / "summary.json",
        "markdown": out_dir / "summary.md",
        "plot": out_dir / "demo.png",
        "series": out_dir / "series.csv",
    }
    paths["json"].write_text(summary.to_json() + "\n")
    paths["markdown"].write_text(render_markdown(summary))
    plot(paths["plot"], times, series_kw, summary.threshold_kw)
    names = list(series_kw)
    lines = ["time," + ",".join(names)]
    for i, t in enumerate(times):
        lines.append(t.isoformat() + "," + ",".join(f"{series_kw[n][i]:.3f}" for n in names))
    paths["series"].write_text("\n".join(lines) + "\n")
    return paths
