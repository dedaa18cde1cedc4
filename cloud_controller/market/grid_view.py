"""The market's view of the grid: the congestion forecast and the radial model, read in kW per ISP.

Why one module: the DSO's request (USEF: the DSO states its need per congestion point and
ISP), the grid rows (GOPACS: an order must not cause congestion elsewhere) and the AC check
all read the same three things — the latest probabilistic forecast (loading quantiles in %
of rating per element and interval), the radial tree (which branches a site's power flows
through) and the plan's median site powers — so they are read here once, the same way.

Conventions (docs/market.md):
- risk r: an element may be over its limit with probability at most r. The (1 − r)
  quantile of its loading is read from the forecast's quantile levels (linear between them;
  a risk outside them is refused: the forecast does not know its tails there).
- kW from %: loading is |S| over the nominal rating at unity power factor, so one % of
  loading is `rating_kw / limit_pct` kW (`RadialGrid.rating_kw` is the limit in kW).
- a forecast interval belongs to the ISP it starts in; an ISP takes its worst interval.
- a reduction at a site moves every branch on its path to the root by 1 kW per kW (radial,
  lossless). It relieves a branch carrying power towards the loads and loads it more when
  the branch carries power back (PV export): the grid rows are the room for reverse flow.
  In a meshed or multi-feed grid it moves each branch by its PTDF (`ptdf`, market/ptdf.py)
  and the rows are the room in each direction (`directed_headroom_kw`).

Pure: arrays and dataclasses in, dicts out; the power flow is a callable the caller gives.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

import numpy as np
import numpy.typing as npt

from cloud_controller.forecast.result import ProbabilisticForecast
from cloud_controller.grid.radial import RadialGrid
from cloud_controller.market.products import ISP_S

__all__ = ["GridView", "PowerFlow", "isp_start", "quantile_pct"]

FloatArray = npt.NDArray[np.float64]
#: site kW (n, n_sites) in `GridView.sites` order -> (branch loading % (n, K), bus voltage pu (n, N))
PowerFlow = Callable[[FloatArray], tuple[FloatArray, FloatArray]]


def isp_start(t: datetime) -> datetime:
    """The start of the 15-min ISP that `t` falls in."""
    s = t.timestamp()
    return t - timedelta(seconds=s - (s // ISP_S) * ISP_S)


def quantile_pct(forecast: ProbabilisticForecast, row: int, level: float) -> FloatArray:
    """The `level` quantile of element `row` per interval, linear between the forecast's levels."""
    levels = np.asarray(forecast.quantile_levels, dtype=float)
    if not levels[0] - 1e-9 <= level <= levels[-1] + 1e-9:
        raise ValueError(
            f"quantile {level:g} is outside the forecast's levels {forecast.quantile_levels}: "
            f"choose a risk in [{1 - levels[-1]:g}, {1 - levels[0]:g}]"
        )
    q = np.asarray(forecast.quantiles[:, row, :], dtype=float)  # (L, T)
    i = int(np.clip(np.searchsorted(levels, level, side="right") - 1, 0, len(levels) - 2))
    w = (level - levels[i]) / (levels[i + 1] - levels[i])
    return np.asarray((1.0 - w) * q[i] + w * q[i + 1], dtype=float)


@dataclass(frozen=True)
class GridView:
    """The latest forecast with the grid it was computed on and the plan's median site powers."""

    forecast: ProbabilisticForecast
    interval_starts: tuple[datetime, ...]  # (T,) start of each forecast interval
    grid: RadialGrid
    sites: tuple[str, ...]  # the fleet's site ids, the columns of p50_kw
    site_bus: tuple[int, ...]  # internal bus of `grid` per site
    p50_kw: FloatArray  # (T, n_sites) median net load per site (load positive)
    power_flow: PowerFlow | None = None  # AC power flow for the check before orders go out
    #: a meshed or multi-feed grid (market/ptdf.py): (K, n_sites) change of each branch's
    #: from→to flow (kW) per kW of reduction at each site; None for a radial tree (its paths)
    ptdf: FloatArray | None = None
    #: (T, K) median from→to branch flows when the grid's own `branch_flows_kw` cannot give them
    flow_p50_kw: FloatArray | None = None

    def __post_init__(self) -> None:
        T = self.forecast.n_intervals
        if len(self.interval_starts) != T or self.p50_kw.shape != (T, len(self.sites)):
            raise ValueError(
                f"view of {T} intervals: {len(self.interval_starts)} starts, p50 {self.p50_kw.shape}"
            )
        if len(self.site_bus) != len(self.sites):
            raise ValueError("one bus per site")
        K = self.grid.n_branch
        if self.ptdf is not None and self.ptdf.shape != (K, len(self.sites)):
            raise ValueError(f"ptdf {self.ptdf.shape}, want ({K}, {len(self.sites)})")
        if self.flow_p50_kw is not None and self.flow_p50_kw.shape != (T, K):
            raise ValueError(f"flow_p50_kw {self.flow_p50_kw.shape}, want ({T}, {K})")

    # -- elements --------------------------------------------------------------------

    def row(self, element: str) -> int:
        """The forecast row of `element`: by id or name, or as a market id names it.

        Market ids are lowercase without ':' (protocols.topics.ID_PATTERN), so a congestion
        point `t_idx_118` is the element `T_idx_118` and `trafo-12` is `trafo:12`
        (case-insensitive, '-' for ':'); two elements that would both match are refused.
        """
        try:
            return self.forecast.index(element)
        except KeyError:
            pass
        key = element.lower()
        hits = {
            i
            for i, (e, n) in enumerate(zip(self.forecast.elements, self.forecast.names, strict=True))
            if key in (e.lower().replace(":", "-"), n.lower().replace(":", "-"))
        }
        if len(hits) != 1:
            why = "no element" if not hits else f"{len(hits)} elements"
            raise KeyError(f"{why} of the forecast is {element!r}")
        return hits.pop()

    def branch(self, element: str) -> tuple[int, int]:
        """(forecast row, branch index) of a line or transformer (see `row`); KeyError if none."""
        row = self.row(element)
        eid = self.forecast.elements[row]
        if self.forecast.kinds[row] not in ("line", "transformer") or eid not in self.grid.branch_names:
            raise KeyError(f"{element!r} is a {self.forecast.kinds[row]}, not a line or transformer")
        return row, self.grid.branch_names.index(eid)

    def kw_per_pct(self, row: int, k: int) -> float:
        """The kW of flow per % of loading of branch k (forecast row `row`)."""
        return float(self.grid.rating_kw[k] / self.forecast.limit_hi[row])

    def _by_isp(self, values: FloatArray, worst: Callable[[Sequence[float]], float]) -> dict[datetime, float]:
        out: dict[datetime, list[float]] = {}
        for t, v in zip(self.interval_starts, values, strict=True):
            out.setdefault(isp_start(t), []).append(float(v))
        return {t: worst(vs) for t, vs in sorted(out.items())}

    # -- 1. the DSO's need ---------------------------------------------------------------

    def relief_needed_kw(self, element: str, risk: float) -> dict[datetime, float]:
        """The kW of reduction per ISP that brings P(exceed) of `element` down to `risk`.

        The (1 − risk) quantile of its loading above its limit, in kW; 0 where it is under.
        Shifting the loading distribution down by that much puts its (1 − risk) quantile on
        the limit, so P(loading > limit) ≤ risk.
        """
        row, k = self.branch(element)
        q = quantile_pct(self.forecast, row, 1.0 - risk)
        over_kw = np.maximum(0.0, q - self.forecast.limit_hi[row]) * self.kw_per_pct(row, k)
        return self._by_isp(over_kw, max)

    # -- 2. GOPACS's rows ----------------------------------------------------------------

    @cached_property
    def _by_child(self) -> dict[int, int]:
        return {int(c): k for k, c in enumerate(self.grid.child)}

    def path(self, bus: int) -> list[int]:
        """Branches from `bus` up to the root."""
        by_child = self._by_child
        out = []
        while bus != self.grid.root:
            k = by_child[bus]
            out.append(k)
            bus = int(self.grid.parent[k])
        return out

    @cached_property
    def signed_p50_kw(self) -> FloatArray:
        """(T, K) lossless branch flows of the median site powers (positive towards the loads, or from→to)."""
        if self.flow_p50_kw is not None:
            return self.flow_p50_kw
        loads = np.zeros((self.forecast.n_intervals, self.grid.n_bus))
        np.add.at(loads.T, np.asarray(self.site_bus), self.p50_kw.T)
        return self.grid.branch_flows_kw(loads)

    def reverse_headroom_kw(self, element: str, risk: float) -> dict[datetime, float]:
        """How many kW more reduction below `element` may add per ISP before it is over in reverse at `risk`.

        Exporting (median flow < 0): limit − the (1 − risk) quantile of its loading.
        Importing: limit + the `risk` quantile of its loading (the flow must first fall
        through zero). The worst interval of the ISP.
        """
        return self.directed_headroom_kw(element, risk, -1)

    def directed_headroom_kw(self, element: str, risk: float, direction: int) -> dict[datetime, float]:
        """How many kW more `element` may carry per ISP in `direction` (+1 from→to, −1 to→from) at `risk`.

        Flowing that way in the median: limit − the (1 − risk) quantile of its loading.
        Otherwise: limit + the `risk` quantile (the flow must first fall through zero). The
        worst interval of the ISP. For a tree, to→from is the reverse flow a reduction adds.
        """
        row, k = self.branch(element)
        limit = float(self.forecast.limit_hi[row])
        flow = self.signed_p50_kw[:, k]
        hi = quantile_pct(self.forecast, row, 1.0 - risk)
        lo = quantile_pct(self.forecast, row, risk)
        room_pct = np.where(direction * flow > 0.0, limit - hi, limit + lo)
        return self._by_isp(room_pct * self.kw_per_pct(row, k), min)

    def elements_below(self, sites: Sequence[str]) -> tuple[set[str], list[str]]:
        """(branch ids on the paths of `sites` to the root, the sites not in this view)."""
        index = {s: i for i, s in enumerate(self.sites)}
        unknown = [s for s in sites if s not in index]
        elements: set[str] = set()
        for s in sites:
            if s in index:
                elements.update(self.grid.branch_names[k] for k in self.path(self.site_bus[index[s]]))
        return elements, unknown

    # -- 3. the AC check ---------------------------------------------------------------

    def site_reduction_kw(
        self, isps: Sequence[datetime], orders: Sequence[tuple[Sequence[str], Mapping[datetime, float]]]
    ) -> FloatArray:
        """(len(isps), n_sites) kW each site reduces: each order's kW split evenly over its sites."""
        index = {s: i for i, s in enumerate(self.sites)}
        col = {t: j for j, t in enumerate(isps)}
        out = np.zeros((len(isps), len(self.sites)))
        for sites, kw in orders:
            cols = [index[s] for s in sites if s in index]
            for t, v in kw.items():
                if cols and t in col:
                    out[col[t], cols] += v / len(cols)
        return out
