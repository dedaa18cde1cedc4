"""A small region for substation tests: HV grid, 25 MVA HV/MV, stations S1 (0.4 MVA: h1, h2) and S2 (0.63 MVA: h3)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cloud_controller.grid import Region, region_from_json


def two_station_region(folder: Path, loads_kw: Sequence[float] = (0.0, 0.0, 0.0)) -> Region:
    """The region written to `folder/small.json` and read back; household i draws `loads_kw[i]`."""
    import pandapower as pp

    net = pp.create_empty_network()
    hv, mv = pp.create_bus(net, 110.0, name="HV"), pp.create_bus(net, 20.0, name="MV")
    lv1, lv2 = pp.create_bus(net, 0.4, name="S1 LV"), pp.create_bus(net, 0.4, name="S2 LV")
    houses = [pp.create_bus(net, 0.4, name=f"h{i}") for i in (1, 2, 3)]
    pp.create_ext_grid(net, hv, vm_pu=1.0)
    pp.create_transformer_from_parameters(
        net, hv, mv, sn_mva=25.0, vn_hv_kv=110.0, vn_lv_kv=20.0, vkr_percent=0.32, vk_percent=12.0,
        pfe_kw=14.0, i0_percent=0.07, name="HV/MV",
    )  # fmt: skip
    pp.create_transformer(net, mv, lv1, std_type="0.4 MVA 20/0.4 kV", name="S1")
    pp.create_transformer(net, mv, lv2, std_type="0.63 MVA 20/0.4 kV", name="S2")
    for bus, lv, p_kw in zip(houses, (lv1, lv1, lv2), loads_kw, strict=True):
        pp.create_line(net, lv, bus, length_km=0.15, std_type="NAYY 4x150 SE")
        pp.create_load(net, bus, p_mw=p_kw / 1e3, name=f"load {bus}")
    path = folder / "small.json"
    pp.to_json(net, str(path))
    return region_from_json(str(path), hvmv_trafo_name="HV/MV")
