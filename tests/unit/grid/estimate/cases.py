"""A small MV/LV case for the estimator's tests: HV grid, HV/MV trafo, two MV/LV stations, LV feeders."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np


def small_net(n_feeder_buses: int = 4) -> Any:
    """HV -> 25 MVA -> 20 kV busbar -> 2 cables -> 2 x 0.63 MVA stations -> 2 LV feeders each.

    Every LV feeder alternates junction (no load) and household buses, so there are
    zero-injection buses; households draw 2..6 kW at cos phi 0.95.
    """
    import pandapower as pp

    net = pp.create_empty_network(sn_mva=1.0)
    hv = pp.create_bus(net, 110.0, name="HV")
    mv = pp.create_bus(net, 20.0, name="MV busbar")
    pp.create_ext_grid(net, hv, vm_pu=1.02, name="HV grid")
    pp.create_transformer_from_parameters(
        net,
        hv,
        mv,
        sn_mva=25.0,
        vn_hv_kv=110.0,
        vn_lv_kv=20.0,
        vkr_percent=0.32,
        vk_percent=12.0,
        pfe_kw=14.0,
        i0_percent=0.07,
        name="HV/MV",
    )
    rng = np.random.default_rng(7)
    for s in range(2):
        mv_s = pp.create_bus(net, 20.0, name=f"MV st{s}")
        pp.create_line(net, mv, mv_s, 1.5 + s, "NA2XS2Y 1x95 RM/25 12/20 kV")
        lv = pp.create_bus(net, 0.4, name=f"LV st{s}")
        pp.create_transformer(net, mv_s, lv, "0.63 MVA 20/0.4 kV", name=f"station {s}")
        for f in range(2):
            prev = lv
            for k in range(n_feeder_buses):
                b = pp.create_bus(net, 0.4, name=f"st{s} f{f} b{k}")
                pp.create_line(net, prev, b, 0.05 + 0.02 * k, "NAYY 4x150 SE")
                if k % 2 == 1:
                    p_kw = float(rng.uniform(2.0, 6.0))
                    pp.create_load(
                        net,
                        b,
                        p_mw=p_kw / 1e3,
                        q_mvar=p_kw / 1e3 * np.tan(np.arccos(0.95)),
                        name=f"HH s{s}f{f}b{k}",
                    )
                prev = b
    # Dyn5 stations shift the LV angle by 150 degrees; pandapower's WLS starts flat and does not
    # converge across that shift, so the cross-check case uses an unshifted winding
    net.trafo["shift_degree"] = 0.0
    return net


def truth(net: Any) -> Any:
    """Run pandapower's power flow on the net (its loads as they are): the grid truth."""
    import pandapower as pp

    pp.runpp(net, calculate_voltage_angles=True, init="dc")
    return net


def measurements(
    net: Any,
    *,
    metered: Any = None,
    noise_seed: int | None = None,
    station_meters: bool = True,
    n_steps: int = 1,
    load_scale: Any = None,
) -> Any:
    """Measurements of the solved `net` (its res_* tables are the truth).

    Households: class 1 meters (rated 10 kW) with P and Q where `metered` (default all),
    pseudo-measurements at truth with a p10..p90 of ±50 % elsewhere. Voltage meters
    (σ 0.2 %) at the HV bus and, with `station_meters`, at each station's LV busbar, plus
    class 0.2 flow meters at each station's LV end. `noise_seed`: add Gaussian errors of
    each meter's σ.
    """
    from cloud_controller.grid.estimate import (
        FlowSensors,
        LoadForecast,
        LoadReadings,
        MeasurementBatch,
        MeterClass,
        SensorSpec,
        VoltageSensors,
        load_sensors,
        meter_sigma,
    )

    ld = net.load
    n = len(ld)
    p = np.tile((ld.p_mw * 1e3).to_numpy(), (n_steps, 1))
    q = np.tile((ld.q_mvar * 1e3).to_numpy(), (n_steps, 1))
    mask = np.ones(n, dtype=bool) if metered is None else np.asarray(metered, dtype=bool)
    rng = np.random.default_rng(noise_seed)
    cls = MeterClass(1.0)
    sig = meter_sigma(p, 10.0, cls)
    read_p = np.where(
        mask, p + (sig * rng.standard_normal(p.shape) if noise_seed is not None else 0.0), np.nan
    )
    read_q = np.where(
        mask, q + (sig * rng.standard_normal(q.shape) if noise_seed is not None else 0.0), np.nan
    )
    loads = load_sensors(
        ld.index.to_numpy(),
        LoadReadings(read_p, read_q),
        LoadForecast(0.5 * p, p, 1.5 * p),
        SensorSpec(cls, rated_kw=10.0),
        site=[f"site-{i}" for i in ld.index],
    )
    hv = int(net.ext_grid.bus.iloc[0])
    stations = net.trafo.index[net.trafo.vn_lv_kv < 1.0]
    buses = [hv] + ([int(b) for b in net.trafo.lv_bus.loc[stations]] if station_meters else [])
    vm = np.tile(net.res_bus.vm_pu.loc[buses].to_numpy(), (n_steps, 1))
    vsig = np.full_like(vm, 0.002)
    if noise_seed is not None:
        vm = vm + vsig * rng.standard_normal(vm.shape)
    volt = VoltageSensors(np.array(buses), vm, vsig, tuple(f"v:{b}" for b in buses))
    tr = list(stations) if station_meters else []
    fp = np.tile(net.res_trafo.p_lv_mw.loc[tr].to_numpy() * 1e3, (n_steps, 1))
    fq = np.tile(net.res_trafo.q_lv_mvar.loc[tr].to_numpy() * 1e3, (n_steps, 1))
    sub = MeterClass(0.2, 0.01)
    fsp, fsq = meter_sigma(fp, 630.0, sub), meter_sigma(fq, 630.0, sub)
    if noise_seed is not None:
        fp = fp + fsp * rng.standard_normal(fp.shape)
        fq = fq + fsq * rng.standard_normal(fq.shape)
    to: Literal["from", "to"] = "to"
    side = tuple(to for _ in tr)
    flows = FlowSensors(
        tuple(f"trafo:{i}" for i in tr),
        side,
        fp,
        fq,
        fsp,
        fsq,
        tuple(f"station:{i}" for i in tr),
    )
    return MeasurementBatch(volt, loads, flows)
