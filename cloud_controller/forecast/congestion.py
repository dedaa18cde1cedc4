"""Probabilistic congestion forecast (the FlexiGrid DSO guide): AC power flows over sampled load scenarios.

Why sampled scenarios and not one deterministic flow: what a grid operator needs to act
on is the probability that an element exceeds its limit, and that depends on how far
each site's load may deviate from its median forecast. Each scenario draws every site's
load per interval from its forecast distribution (median + sigma x a standard normal,
independent between sites), and one power-grid-model batch calculation runs all
scenarios x intervals at once on the region's network. Per element (the HV/MV
transformer, each MV/LV station transformer, the most loaded line) and interval the
result is the expected loading and the share of scenarios above the limit.

Pure computation on arrays: the planner hands over its per-site forecasts; nothing here
reads the store or the clock.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cloud_controller.grid import BatchPowerFlow, Region

__all__ = ["CongestionForecast", "ScenarioCongestion"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class CongestionForecast:
    """Per element and interval: expected loading (% of the element's limit) and P(exceed)."""

    elements: tuple[str, ...]  # "hvmv", station names, "lines"
    loading_pct: FloatArray  # (T, E) mean over the scenarios
    p_exceed: FloatArray  # (T, E) share of the scenarios above the limit
    n_scenarios: int


class ScenarioCongestion:
    """Built once per region and fleet (the PGM model), run every period on new forecasts."""

    def __init__(
        self, region: Region, site_households: list[int], *, n_scenarios: int = 100, seed: int = 0
    ) -> None:
        if n_scenarios < 1:
            raise ValueError("n_scenarios must be >= 1")
        if region.hvmv_branch is None:
            raise ValueError("the region has no HV/MV transformer")
        self.region = region
        self.n_scenarios = n_scenarios
        self._rng = np.random.default_rng(seed)
        self._households = np.asarray(site_households, dtype=np.int64)
        # Every household of the region is a load column; those not in the fleet draw 0 (the
        # controller knows only its sites, as the planner's grid balance does).
        self._pf = BatchPowerFlow(region.net, region.site_load_idx)
        names = list(self._pf.trafo_names)
        hvmv_name = region.grid.branch_names[region.hvmv_branch]
        self._columns: list[tuple[str, int]] = [("hvmv", names.index(hvmv_name))]
        for station, branch in sorted(region.station_branch.items()):
            name = region.grid.branch_names[branch]
            if name in names:
                self._columns.append((station, names.index(name)))

    @property
    def elements(self) -> tuple[str, ...]:
        """Names of the elements forecast: each transformer column, then "lines" (the most loaded line)."""
        return (*(name for name, _ in self._columns), "lines")

    def forecast(
        self, p50_kw: FloatArray, sigma_kw: FloatArray, *, hvmv_limit_kw: float | None = None
    ) -> CongestionForecast:
        """p50_kw, sigma_kw: (T, n_sites) per-site median and standard deviation of net load.

        `hvmv_limit_kw`: the congestion limit at the HV/MV transformer as the planner states it
        (kW of the registered sites' load); None = the transformer's rating. Other elements
        are judged against their rating (100 % loading).
        """
        p50 = np.atleast_2d(np.asarray(p50_kw, dtype=float))
        sigma = np.broadcast_to(np.maximum(np.asarray(sigma_kw, dtype=float), 0.0), p50.shape)
        T, n = p50.shape
        if n != len(self._households):
            raise ValueError(f"forecast for {n} sites, the fleet has {len(self._households)}")
        S = self.n_scenarios
        draws = p50[None, :, :] + sigma[None, :, :] * self._rng.standard_normal((S, T, n))
        # sites -> load columns (several sites may share a household's bus: they add up)
        to_loads = np.zeros((n, self._pf.n_loads))
        to_loads[np.arange(n), self._households] = 1.0
        loads = draws.reshape(S * T, n) @ to_loads
        res = self._pf.run(loads, threading=-1)
        loading = res.trafo_loading.reshape(S, T, -1)
        out_loading = np.zeros((T, len(self._columns) + 1))
        out_p = np.zeros_like(out_loading)
        for e, (name, col) in enumerate(self._columns):
            frac = loading[:, :, col]
            if name == "hvmv" and hvmv_limit_kw is not None:
                # the controller's limit is on its sites' load (as the planner's), not on the rating
                frac = draws.sum(axis=2) / hvmv_limit_kw
            out_loading[:, e] = 100.0 * frac.mean(axis=0)
            out_p[:, e] = (frac > 1.0).mean(axis=0)
        lines = res.line_loading_max.reshape(S, T)
        out_loading[:, -1] = 100.0 * lines.mean(axis=0)
        out_p[:, -1] = (lines > 1.0).mean(axis=0)
        return CongestionForecast(self.elements, out_loading, out_p, S)
