"""Grid truth: an AC power flow over what the simulated buildings really drew.

The controller only sees its own estimate; to know whether congestion was relieved,
the demo and the end-to-end tests feed each building's *physical* grid-connection power
(from the simulators' physics, not from telemetry) into a full pandapower AC power flow
of the region and read the transformer loadings. Households of the region that are not
simulated buildings carry their `background` profile (`gridflex.loop.background`) for the
interval that contains `at`; without one they draw 0 (the constructed-threshold scenario,
`congestion_threshold_kw`).

Each interval also yields what a meter on every MV/LV station's LV busbar reads
(`StationFlow`): the transformer's LV-side P and Q into the LV network, the busbar's
L-N voltage and the phase current: the values the simulated substation meters serve.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from cloud_controller import Region
from gridflex.loop.background import BackgroundLoad
from protocols.errors import ConfigError

__all__ = ["GridTruth", "StationFlow", "TruthInterval", "congestion_threshold_kw", "count_overloads"]

#: The grid frequency the power flow assumes (a distribution grid does not move it).
F_HZ = 50.0


@dataclass(frozen=True)
class StationFlow:
    """A station's LV busbar as its meter sees it: balanced three-phase, load-positive (into the LV network)."""

    p_kw: float
    q_kvar: float
    v_pu: float
    v_ln_v: float  # per phase: vm_pu × vn_kv / √3
    i_a: float  # per phase, LV side
    f_hz: float = F_HZ


@dataclass(frozen=True)
class TruthInterval:
    """One interval's power-flow result (kW load-positive, loadings in % of rating)."""

    root_p_kw: float  # import through the HV/MV transformer (HV side)
    hvmv_loading_pct: float
    station_loading_pct: dict[str, float]  # MV/LV transformers by station name
    v_min_pu: float
    v_max_pu: float
    #: What each MV/LV station's LV busbar meter reads, by station name.
    station_flow: dict[str, StationFlow] = field(default_factory=dict)
    #: The most loaded line (pandapower's loading, % of its ampacity) and its name.
    line_loading_max_pct: float = 0.0
    line_max: str = ""


class GridTruth:
    """AC power flow of `region` with each simulated site at its household's bus."""

    def __init__(
        self,
        region: Region,
        household_of_site: Mapping[str, int],
        *,
        cos_phi: float = 0.97,
        background: BackgroundLoad | None = None,
    ) -> None:
        if region.hvmv_branch is None:
            raise ConfigError("the region has no HV/MV transformer to measure", key="region")
        for site, idx in household_of_site.items():
            if not 0 <= idx < region.n_sites:
                raise ConfigError(f"site {site}: household index {idx} not in the region", key="sites")
        if background is not None:
            overlap = set(household_of_site.values()) & set(background.households.tolist())
            if overlap:
                raise ConfigError(
                    f"households {sorted(overlap)[:5]} carry both a site and background load",
                    key="background",
                )
        self.region = region
        self.household_of_site = dict(household_of_site)
        self.background = background
        self._bg_load_idx = (
            region.site_load_idx[background.households] if background is not None else np.zeros(0, np.int64)
        )
        self.cos_phi = cos_phi
        self._q_per_p = float(np.tan(np.arccos(cos_phi)))
        self._net: Any = copy.deepcopy(region.net)
        self._net.load["p_mw"] = 0.0
        self._net.load["q_mvar"] = 0.0
        self._net.sgen["in_service"] = False  # PV is part of each site's measured net power
        self._hvmv_trafo = int(region.grid.branch_names[region.hvmv_branch].split(":")[1])
        self._station_trafo = {
            name: int(region.grid.branch_names[k].split(":")[1]) for name, k in region.station_branch.items()
        }
        self._station_lv_bus = {
            name: int(self._net.trafo.lv_bus.at[t]) for name, t in self._station_trafo.items()
        }

    def copy(self) -> GridTruth:
        """The same truth (sites, background, cos φ) on a net of its own: for another thread."""
        return GridTruth(
            self.region, self.household_of_site, cos_phi=self.cos_phi, background=self.background
        )

    @property
    def stations(self) -> list[str]:
        """The MV/LV stations (transformer names) of the region, in the region's order."""
        return list(self._station_trafo)

    def _station_flow(self, station: str) -> StationFlow:
        """Read one station's LV side from the solved net (pandapower's `p_lv_mw` flows into the trafo)."""
        net, t, bus = self._net, self._station_trafo[station], self._station_lv_bus[station]
        vm_pu = float(net.res_bus.vm_pu.at[bus])
        return StationFlow(
            p_kw=-float(net.res_trafo.p_lv_mw.at[t]) * 1000.0,
            q_kvar=-float(net.res_trafo.q_lv_mvar.at[t]) * 1000.0,
            v_pu=vm_pu,
            v_ln_v=vm_pu * float(net.bus.vn_kv.at[bus]) * 1000.0 / math.sqrt(3.0),
            i_a=float(net.res_trafo.i_lv_ka.at[t]) * 1000.0,
        )

    def evaluate(self, p_kw_by_site: Mapping[str, float], *, at: datetime | None = None) -> TruthInterval:
        """Power flow for one interval; unknown sites are an error, missing sites draw 0.

        With a background, `at` (any time inside the interval) picks its row; it is required.
        """
        import pandapower as pp

        net = self._net
        net.load["p_mw"] = 0.0
        net.load["q_mvar"] = 0.0
        if self.background is not None:
            if at is None:
                raise ValueError("this grid truth has a background load: evaluate needs `at`")
            k = self.background.row(at)
            net.load.loc[self._bg_load_idx, "p_mw"] = self.background.p_kw[k] / 1000.0
            net.load.loc[self._bg_load_idx, "q_mvar"] = self.background.q_kvar[k] / 1000.0
        for site, p_kw in p_kw_by_site.items():
            idx = self.household_of_site.get(site)
            if idx is None:
                raise ConfigError(f"site {site} is not placed in the region", key="sites")
            load = int(self.region.site_load_idx[idx])
            net.load.at[load, "p_mw"] = float(p_kw) / 1000.0
            net.load.at[load, "q_mvar"] = float(p_kw) / 1000.0 * self._q_per_p
        # A fresh conversion every call (no `recycle`): pandapower's recycled case halves the
        # time but is not bit-for-bit repeatable (same loads, results 1e-13 apart), and the
        # meters must read the same flow for the same powers.
        pp.runpp(net, init="auto", calculate_voltage_angles=False, numba=False)
        return TruthInterval(
            root_p_kw=float(net.res_ext_grid.p_mw.sum() * 1000.0),
            hvmv_loading_pct=float(net.res_trafo.loading_percent.at[self._hvmv_trafo]),
            station_loading_pct={
                name: float(net.res_trafo.loading_percent.at[t]) for name, t in self._station_trafo.items()
            },
            v_min_pu=float(net.res_bus.vm_pu.min()),
            v_max_pu=float(net.res_bus.vm_pu.max()),
            station_flow={name: self._station_flow(name) for name in self._station_trafo},
            line_loading_max_pct=float(net.res_line.loading_percent.max()) if len(net.line) else 0.0,
            line_max=str(net.line.name.at[net.res_line.loading_percent.idxmax()]) if len(net.line) else "",
        )

    def evaluate_series(
        self, p_kw_by_site: Mapping[str, Sequence[float]], *, starts: Sequence[datetime] | None = None
    ) -> list[TruthInterval]:
        """One power flow per interval; every site's series (and `starts`, if given) the same length.

        `starts`: each interval's start, required with a background load.
        """
        lengths = {len(v) for v in p_kw_by_site.values()}
        if len(lengths) > 1:
            raise ValueError(f"series of different lengths: {sorted(lengths)}")
        n = lengths.pop() if lengths else (len(starts) if starts is not None else 0)
        if starts is not None and len(starts) < n:
            raise ValueError(f"{len(starts)} interval starts for {n} intervals")
        return [
            self.evaluate(
                {s: float(v[t]) for s, v in p_kw_by_site.items()},
                at=starts[t] if starts is not None else None,
            )
            for t in range(n)
        ]


def congestion_threshold_kw(no_control_root_kw: Sequence[float], *, overload_kw: float) -> float:
    """A constructed congestion threshold: the no-control peak minus `overload_kw`.

    The demo and the end-to-end tests need a congestion episode the controlled fleet can
    relieve; setting the HV/MV threshold below the uncontrolled evening peak by a fraction of
    the fleet's flexible power makes that episode explicit and reproducible.
    """
    peak = float(np.max(no_control_root_kw))
    if overload_kw <= 0 or overload_kw >= peak:
        raise ValueError("overload_kw must be between 0 and the no-control peak")
    return peak - overload_kw


def count_overloads(
    root_kw: Sequence[float] | npt.NDArray[np.float64], limit_kw: float, *, tolerance_kw: float = 0.0
) -> int:
    """Intervals whose import exceeds the threshold (by more than `tolerance_kw`)."""
    return int(np.sum(np.asarray(root_kw, dtype=float) > limit_kw + tolerance_kw))
