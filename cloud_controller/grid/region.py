"""The study region: selected `lv_schutterwald` stations behind one HV/MV transformer.

Any pandapower JSON with one ext_grid works too (`region_from_json`); households are its
loads, each a site at the load's bus.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from cloud_controller.grid.quiet import quiet_pandapower
from cloud_controller.grid.radial import RadialGrid, radial_from_pandapower
from protocols.errors import ConfigError

DEFAULT_STATIONS = ("T_idx_118", "T_idx_80", "T_idx_77")


@dataclass(frozen=True)
class Region:
    """A pandapower net plus its radial model and the site (household) → bus mapping."""

    net: Any
    grid: RadialGrid
    site_names: tuple[str, ...]
    site_bus: npt.NDArray[np.int64]  # internal bus index per site
    site_load_idx: npt.NDArray[np.int64]  # pandapower load index per site
    site_station: tuple[str, ...]  # station name per site ("" if unknown)
    station_branch: dict[str, int]  # station name -> branch index of its MV/LV trafo
    hvmv_branch: int | None  # branch index of the HV/MV transformer (None if absent)

    @property
    def n_sites(self) -> int:
        """Number of households (sites) in the region."""
        return len(self.site_names)


def _station_of_buses(net: Any, grid: RadialGrid) -> tuple[dict[int, str], dict[str, int]]:
    """Label each bus with the MV/LV station (trafo) above it."""
    station_branch: dict[str, int] = {}
    label: dict[int, str] = {}
    children: dict[int, list[int]] = {}
    for k, p in enumerate(grid.parent):
        children.setdefault(int(p), []).append(k)
    for k, name in enumerate(grid.branch_names):
        table, idx = name.split(":")
        if table != "trafo":
            continue
        tr = net.trafo.loc[int(idx)]
        if float(net.bus.vn_kv.at[tr.lv_bus]) > 1.0:
            continue
        sname = str(tr["name"]) if tr["name"] is not None else name
        station_branch[sname] = k
        stack = [int(grid.child[k])]
        while stack:
            b = stack.pop()
            label[b] = sname
            stack.extend(int(grid.child[c]) for c in children.get(b, []))
    return label, station_branch


def _region(net: Any, hvmv_name: str | None) -> Region:
    grid = radial_from_pandapower(net)
    label, station_branch = _station_of_buses(net, grid)
    loads = net.load[net.load.in_service]
    site_bus = np.asarray([grid.index_of(int(b)) for b in loads.bus], dtype=np.int64)
    hv = None
    if hvmv_name is not None:
        hv = grid.branch_names.index(hvmv_name)
    return Region(
        net=net,
        grid=grid,
        site_names=tuple(str(n) for n in loads.name),
        site_bus=site_bus,
        site_load_idx=loads.index.to_numpy(dtype=np.int64),
        site_station=tuple(label.get(int(b), "") for b in site_bus),
        station_branch=station_branch,
        hvmv_branch=hv,
    )


def build_schutterwald_region(
    stations: Sequence[str] = DEFAULT_STATIONS, *, hvmv_sn_mva: float = 25.0
) -> Region:
    """Cut the chosen stations out of `lv_schutterwald` and feed them from one 25 MVA HV/MV trafo."""
    quiet_pandapower()
    import pandapower as pp
    import pandapower.networks as pn
    import pandapower.toolbox as tb
    import pandapower.topology as top

    full = pn.lv_schutterwald()
    tr = full.trafo[full.trafo.name.isin(list(stations))]
    if len(tr) != len(stations):
        missing = set(stations) - set(tr.name)
        raise ConfigError(f"stations not in lv_schutterwald: {sorted(missing)}", key="stations")
    graph = top.create_nxgraph(full, respect_switches=True, include_trafos=False)
    buses: set[int] = set()
    for lv in tr.lv_bus:
        buses |= set(top.connected_component(graph, int(lv)))
    buses |= {int(b) for b in tr.hv_bus}
    net = tb.select_subnet(full, buses, include_results=False)
    net.ext_grid.drop(net.ext_grid.index, inplace=True)
    mv_buses = [int(b) for b in tr.hv_bus]
    mv = mv_buses[0]
    if len(mv_buses) > 1:
        tb.fuse_buses(net, mv, set(mv_buses[1:]))
    hv = pp.create_bus(net, vn_kv=110.0, name="HV")
    hvmv = pp.create_transformer_from_parameters(
        net,
        hv,
        mv,
        sn_mva=hvmv_sn_mva,
        vn_hv_kv=110.0,
        vn_lv_kv=float(net.bus.vn_kv.at[mv]),
        vkr_percent=0.32,
        vk_percent=12.0,
        pfe_kw=14.0,
        i0_percent=0.07,
        name="HV/MV",
    )
    pp.create_ext_grid(net, hv, vm_pu=1.0, name="HV grid")
    return _region(net, f"trafo:{hvmv}")


def region_from_json(path: str, *, hvmv_trafo_name: str | None = None) -> Region:
    """Load a pandapower JSON; its loads are the sites. A meshed or multi-feed net becomes a DC region.

    (`grid/meshed/planning.meshed_region`: the planner plans it on its whole DC network.)
    """
    quiet_pandapower()
    import pandapower as pp

    from cloud_controller.grid.meshed.planning import is_meshed_net, meshed_region

    net = pp.from_json(path)
    if is_meshed_net(net):
        if hvmv_trafo_name is not None:
            raise ConfigError(
                "hvmv_trafo_name names the one HV/MV transformer of a radial net; this net is meshed "
                "or has several feeding points (its branches are limited by name: grid.limits)",
                file=path,
                key="hvmv_trafo_name",
            )
        return meshed_region(net)
    name = None
    if hvmv_trafo_name is not None:
        idx = net.trafo.index[net.trafo.name == hvmv_trafo_name]
        if len(idx) != 1:
            raise ConfigError(f"trafo {hvmv_trafo_name!r} not found", file=path, key="hvmv_trafo_name")
        name = f"trafo:{int(idx[0])}"
    return _region(net, name)
