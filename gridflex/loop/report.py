"""The demo's summary: congestion with vs. without control, commands, telemetry; JSON, text, plot.

Pure functions over interval series so the figures are tested without running a demo.
With a physical congestion the summary names the congested element, its rating (kVA) and
its loading with and without control (peak %, intervals over 100 %, kVAh above the
rating: loading % × rating, pandapower's current-based loading); with the constructed
threshold, the HV/MV import against it. demo.png shows that series and, below it on the
same time axis, what the controller did (fleet battery SoC, EV chargers and heat pumps under a cap), overloaded intervals
shaded, in the operator's local time (`OPERATOR_TIMEZONE`: the region is in Germany).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from gridflex.loop.grid_truth import TruthInterval, count_overloads

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

#: The zone the demo's operator reads times in: the dashboard's and demo.png's axis.
OPERATOR_TIMEZONE = "Europe/Berlin"


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


@dataclass(frozen=True)
class CapCommand:
    """One `p_limit_kw` command to an EV charger or heat pump, with the asset's nominal power."""

    valid_from: datetime
    site: str
    asset: str
    kind: str  # "ev" or "hp"
    value_kw: float
    nominal_kw: float

    @property
    def capped(self) -> bool:
        """Below nominal: a cap (nominal is the controller's release)."""
        return self.value_kw < self.nominal_kw - 1e-6


@dataclass(frozen=True)
class ControlActions:
    """What the controller did per interval: fleet-mean battery SoC, EV chargers and heat pumps capped."""

    soc_pct: list[float]  # mean of the sites' mean SoC over the interval; nan where none reported
    ev_capped: list[int]  # EV chargers under a cap at the interval's midpoint
    hp_capped: list[int]

    def head(self, n: int) -> ControlActions:
        """The first `n` intervals."""
        return ControlActions(self.soc_pct[:n], self.ev_capped[:n], self.hp_capped[:n])


def control_actions(
    starts: Sequence[datetime],
    period_s: float,
    soc_by_site: Mapping[str, Sequence[tuple[datetime, float]]],
    caps: Sequence[CapCommand],
) -> ControlActions:
    """Per interval: the fleet's mean SoC from stored telemetry, and assets whose latest command is a cap."""
    period = timedelta(seconds=period_s)
    soc: list[float] = []
    for t in starts:
        means = [
            float(np.mean(vals))
            for series in soc_by_site.values()
            if (vals := [v for ts, v in series if t <= ts < t + period])
        ]
        soc.append(float(np.mean(means)) if means else math.nan)
    latest: dict[tuple[str, str], CapCommand] = {}
    ordered = sorted(caps, key=lambda c: c.valid_from)
    counts: dict[str, list[int]] = {"ev": [], "hp": []}
    j = 0
    for t in starts:
        mid = t + period / 2
        while j < len(ordered) and ordered[j].valid_from <= mid:
            latest[(ordered[j].site, ordered[j].asset)] = ordered[j]
            j += 1
        for kind, out in counts.items():
            out.append(sum(1 for c in latest.values() if c.kind == kind and c.capped))
    return ControlActions(soc, counts["ev"], counts["hp"])


def figure(
    times: Sequence[datetime],
    series_kw: Mapping[str, Sequence[float]],
    threshold_kw: float,
    actions: ControlActions | None = None,
    *,
    timezone: str = OPERATOR_TIMEZONE,
    element: str | None = None,
) -> Figure:
    """HV/MV import against the threshold, or `element`'s loading (%) against 100 %, in `timezone`.

    With `actions`, two panels below on the same axis: what the controller did. Intervals
    over the threshold are shaded on every panel, so cause and action line up.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    zone = ZoneInfo(timezone)
    rows = 3 if actions is not None else 1
    fig, axes = plt.subplots(
        rows,
        1,
        sharex=True,
        figsize=(10, 4.5 + 2.4 * (rows - 1)),
        dpi=110,
        gridspec_kw={"height_ratios": [2.2, 1, 1][:rows]},
        squeeze=False,
    )
    ax = axes[0][0]
    step = (times[1] - times[0]) if len(times) > 1 else timedelta(minutes=15)
    edges = [*times, times[-1] + step] if times else []
    x = mdates.date2num(edges)  # type: ignore[no-untyped-call]
    for label, values in series_kw.items():
        v = list(values)
        ax.stairs(v, x[: len(v) + 1], label=label, linewidth=1.6, baseline=None)
    baseline, *controlled = list(series_kw)  # the first series is the no-control run
    for k in range(len(times)):
        with_control = any(series_kw[n][k] > threshold_kw for n in controlled)
        if with_control or series_kw[baseline][k] > threshold_kw:
            for a in (row[0] for row in axes):
                a.axvspan(x[k], x[k + 1], color="tab:red", alpha=0.28 if with_control else 0.12, linewidth=0)
    if element is not None:
        ax.axhline(
            threshold_kw, color="tab:red", linestyle="--", linewidth=1.2, label=f"{element} rating (100 %)"
        )
        ax.set_ylabel(f"{element} loading (%)")
        ax.set_title(f"Grid truth: MV/LV transformer {element} loading, with and without GridFlex control")
    else:
        ax.axhline(threshold_kw, color="tab:red", linestyle="--", linewidth=1.2, label="congestion threshold")
        ax.set_ylabel("HV/MV import (kW)")
        ax.set_title("Grid truth: HV/MV transformer import, with and without GridFlex control")
    ax.legend(loc="upper left", fontsize=8)
    if actions is not None:
        soc_ax, cap_ax = axes[1][0], axes[2][0]
        soc_ax.stairs(actions.soc_pct, x[: len(actions.soc_pct) + 1], color="tab:green", baseline=None)
        soc_ax.set_ylabel("battery SoC (%)\nfleet mean")
        soc_ax.set_ylim(0, 100)
        cap_ax.stairs(
            actions.ev_capped,
            x[: len(actions.ev_capped) + 1],
            label="EV chargers capped",
            color="tab:purple",
            baseline=None,
        )
        cap_ax.stairs(
            actions.hp_capped,
            x[: len(actions.hp_capped) + 1],
            label="heat pumps capped",
            color="tab:orange",
            baseline=None,
        )
        cap_ax.set_ylabel("assets capped")
        cap_ax.set_ylim(bottom=0)
        cap_ax.yaxis.get_major_locator().set_params(integer=True)
        cap_ax.legend(loc="upper left", fontsize=8)
    for row in axes:
        row[0].grid(alpha=0.3)
    bottom = axes[-1][0]
    bottom.xaxis.set_major_locator(mdates.AutoDateLocator(tz=zone))  # type: ignore[no-untyped-call]
    bottom.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=zone))  # type: ignore[no-untyped-call]
    if len(x) > 1:
        bottom.set_xlim(x[0], x[-1])
    tzname = times[0].astimezone(zone).tzname() if times else ""
    bottom.set_xlabel(
        f"local time ({timezone}, {tzname}); shaded: an overloaded interval without control, "
        "darker: with control"
    )
    fig.tight_layout()
    return fig


def plot(
    out: Path,
    times: Sequence[datetime],
    series_kw: Mapping[str, Sequence[float]],
    threshold_kw: float,
    actions: ControlActions | None = None,
    *,
    element: str | None = None,
) -> Path:
    """`figure(...)` as a PNG at `out` (demo.png)."""
    import matplotlib.pyplot as plt

    fig = figure(times, series_kw, threshold_kw, actions, element=element)
    fig.savefig(out)
    plt.close(fig)
    return out


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
