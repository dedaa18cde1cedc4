"""demo.png and what the controller did per interval: fleet battery SoC, EV chargers and heat pumps capped.

Split from report.py (the summary's numbers and text): this is the picture. The series and,
below it on the same time axis, the controller's actions, overloaded intervals shaded, in the
operator's local time (`OPERATOR_TIMEZONE`: the region is in Germany).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["OPERATOR_TIMEZONE", "CapCommand", "ControlActions", "control_actions", "figure", "plot"]

#: The zone the demo's operator reads times in: the dashboard's and demo.png's axis.
OPERATOR_TIMEZONE = "Europe/Berlin"


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
