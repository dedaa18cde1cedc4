"""An FSP's prognosis of its own devices per ISP: what its EVs and heat pumps will draw, and what it can take off.

Why: an offer built from the devices' nominal kW asks for reductions of devices that are
off in the ordered ISPs, and the order is then short (the measured demo: 2.3-3.0 kWh
delivered of 10.6-12.8 kWh ordered). An offer is honest when each ISP's kW is at most
what a `p_limit_kw` can take off the devices that will be running then.

What a limit can take off one device drawing `p` kW: `max(0, p - floor)`, with the
floor the agent holds (§14a EnWG: an EV or heat pump is never limited below
`GUARANTEED_MIN_KW`, edge_agent/decision.py), and 0 while it is off. The ISP's figure is
the mean over its steps (an EV that charges half the ISP offers half its cut).

The source (`DevicePrognosis.from_run`) is a per-step run of the FSP's own sites:

- `schedule`: the devices' own schedule today without activation (`scenario.no_control`,
  the buildings' physics only: no grid, no background). It stands for what an
  aggregator knows of its customers: the EV sessions declared in its charging app
  (arrival, departure, energy) and each heat pump's duty from its tank and heat-demand
  forecast. It is perfect knowledge of those schedules, so it is the upper bound of
  what offers from the running devices give.
- `yesterday`: the same ISP one day before (`scenario.yesterday`, the imported meter and
  device history): a naive prognosis from telemetry the FSP holds, with no knowledge of
  today's sessions.

Neither reads the grid truth (the element's loading): that stays the DSO's, who asks.
Pure: a reference run in, dicts out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from gridflex.loop.reference_run import FloatArray, ReferenceRun
from protocols.assets import EV, HP, Points
from protocols.market import ISP_S
from simulators.siteconfig import GUARANTEED_MIN_KW

__all__ = ["PROGNOSIS_SOURCES", "DevicePrognosis", "device_prognosis", "isp_mean", "reducible_kw"]

#: Where an FSP's prognosis comes from (see the module docstring).
PROGNOSIS_SOURCES = ("schedule", "yesterday", "nominal")
#: The device points of a prognosis: EV and heat pump power, by the asset ids the agent publishes.
_DEVICES = ((EV, Points.EV_P_KW), (HP, Points.HP_P_KW))


def reducible_kw(p_kw: FloatArray, floor_kw: float = GUARANTEED_MIN_KW) -> FloatArray:
    """Per step, what a limit can take off a device drawing `p_kw`: max(0, p − floor); 0 when off (or NaN)."""
    return np.maximum(np.nan_to_num(p_kw, nan=0.0) - floor_kw, 0.0)


def isp_mean(
    times: Sequence[datetime], values: FloatArray, *, shift: timedelta = timedelta(0), isp_s: float = ISP_S
) -> dict[datetime, float]:
    """The mean of `values` per ISP; `times` are step ends (as `ReferenceRun` records them), shifted by `shift`."""
    sums: dict[datetime, float] = {}
    counts: dict[datetime, int] = {}
    for t, v in zip(times, values, strict=True):
        begin = (t + shift).timestamp() - 1e-6  # a step ending on a boundary belongs to the ISP before it
        start = datetime.fromtimestamp(begin - begin % isp_s, tz=t.tzinfo)
        sums[start] = sums.get(start, 0.0) + float(v)
        counts[start] = counts.get(start, 0) + 1
    return {t: sums[t] / counts[t] for t in sorted(sums)}


@dataclass(frozen=True)
class DevicePrognosis:
    """Per site: each device's expected kW and reducible kW per ISP, and the site's net kW (its baseline)."""

    device_kw: dict[tuple[str, str], dict[datetime, float]]  # (site, asset) -> ISP start -> kW
    reducible_kw: dict[tuple[str, str], dict[datetime, float]]
    net_kw: dict[str, dict[datetime, float]]

    @classmethod
    def from_run(
        cls,
        run: ReferenceRun,
        sites: Sequence[str],
        *,
        shift: timedelta = timedelta(0),
        floor_kw: float = GUARANTEED_MIN_KW,
    ) -> DevicePrognosis:
        """The prognosis of `sites` from `run` (its ISPs moved by `shift`: +1 day for `yesterday`)."""
        device: dict[tuple[str, str], dict[datetime, float]] = {}
        reducible: dict[tuple[str, str], dict[datetime, float]] = {}
        net: dict[str, dict[datetime, float]] = {}
        for site in sites:
            j = run.sites.index(site)
            net[site] = isp_mean(run.times, run.p_net_kw[:, j], shift=shift)
            for asset, key in _DEVICES:
                series = run.series.get(key)
                if series is None or np.all(np.isnan(series[:, j])):
                    continue
                p = series[:, j]
                device[(site, asset)] = isp_mean(run.times, np.nan_to_num(p, nan=0.0), shift=shift)
                reducible[(site, asset)] = isp_mean(run.times, reducible_kw(p, floor_kw), shift=shift)
        return cls(device, reducible, net)

    def available_kw(self, sites: Sequence[str]) -> dict[datetime, float]:
        """What the FSP can take off `sites` per ISP: the sum of their devices' reducible kW."""
        out: dict[datetime, float] = {}
        for (site, _), per_isp in self.reducible_kw.items():
            if site in sites:
                for t, kw in per_isp.items():
                    out[t] = out.get(t, 0.0) + kw
        return out

    def baseline_kw(self, sites: Sequence[str]) -> dict[datetime, float]:
        """The sites' expected net load per ISP without activation (the offer's D-prognosis)."""
        out: dict[datetime, float] = {}
        for site in sites:
            for t, kw in self.net_kw.get(site, {}).items():
                out[t] = out.get(t, 0.0) + kw
        return out

    def cut_share(self, sites: Sequence[str], isp: datetime, kw: float) -> float:
        """The share f of every device's reducible kW that delivers `kw` from `sites` in `isp` (0..1).

        Each device is cut by f of what it can give (a limit of nominal − f·(nominal − floor)
        while it runs), so the devices together give f · Σ reducible = `kw` when f < 1.
        """
        total = sum(v.get(isp, 0.0) for k, v in self.reducible_kw.items() if k[0] in sites)
        if total <= 0.0 or kw <= 0.0:
            return 0.0
        return min(1.0, kw / total)


def device_prognosis(scenario: Any, sites: Sequence[str], source: str) -> DevicePrognosis | None:
    """The FSP's prognosis of `sites` from `source` (`PROGNOSIS_SOURCES`); None for "nominal" (no prognosis)."""
    if source == "schedule":
        return DevicePrognosis.from_run(scenario.no_control, sites)
    if source == "yesterday":
        return DevicePrognosis.from_run(scenario.yesterday, sites, shift=timedelta(days=1))
    if source == "nominal":
        return None
    raise ValueError(f"prognosis source {source!r}: one of {', '.join(PROGNOSIS_SOURCES)}")
