"""Substation meters: SunSpec model 203 read by an independent client, and an edge agent publishing them.

The region is a small pandapower net (HV/MV transformer, two MV/LV stations, three
households) so the power flow is exact to read and quick; `gridflex sim`'s test covers
the Schutterwald region. The client below is pymodbus reading raw holding registers and
decoding them by the SunSpec model 203 definition (model_203.json of the SunSpec
Information Model: point offsets from the model's ID register, `*_SF` scale factors,
int16 / sunssf / acc32), not by the simulator's own map.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient

from edge_agent.config import load_config
from gridflex.loop.grid_truth import GridTruth
from gridflex.loop.substations import Substations, read_substation_sites
from gridflex.ops.broker import MosquittoBroker
from protocols.assets import Points, substation_site_id
from tests.integration.two_stations import two_station_region

from ..edge_agent.cloud import Cloud
from ..edge_agent.helpers import running_agent

pytestmark = pytest.mark.integration

# SunSpec model 203 (wye-connect three-phase meter), offsets from its ID register.
M203 = {
    "A": 2, "AphA": 3, "AphB": 4, "AphC": 5, "A_SF": 6,
    "PhV": 7, "PhVphA": 8, "PhVphB": 9, "PhVphC": 10, "PPV": 11, "PhVphAB": 12, "V_SF": 15,
    "Hz": 16, "Hz_SF": 17, "W": 18, "WphA": 19, "W_SF": 22, "VA": 23, "VA_SF": 27,
    "VAR": 28, "VARphA": 29, "VAR_SF": 32, "PF": 33, "PF_SF": 37,
    "TotWhExp": 38, "TotWhImp": 46, "TotWh_SF": 54,
}  # fmt: skip
SF_OF = {
    "A": "A_SF", "AphA": "A_SF", "AphB": "A_SF", "AphC": "A_SF",
    "PhV": "V_SF", "PhVphA": "V_SF", "PhVphB": "V_SF", "PhVphC": "V_SF", "PPV": "V_SF", "PhVphAB": "V_SF",
    "Hz": "Hz_SF", "W": "W_SF", "WphA": "W_SF", "VA": "VA_SF", "VAR": "VAR_SF", "VARphA": "VAR_SF",
    "PF": "PF_SF", "TotWhExp": "TotWh_SF", "TotWhImp": "TotWh_SF",
}  # fmt: skip
ACC32 = {"TotWhExp", "TotWhImp"}


def _s16(v: int) -> int:
    return v - 0x10000 if v >= 0x8000 else v


async def read_model_203(port: int) -> dict[str, float]:
    """Walk the SunSpec chain from 40000 to model 203 and decode its points (engineering units)."""
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2.0, retries=0)
    try:
        assert await client.connect()
        head = await client.read_holding_registers(40000, count=4, device_id=1)
        assert list(head.registers[:2]) == [0x5375, 0x6E53]  # "SunS"
        addr, found = 40002, None
        for _ in range(10):
            rr = await client.read_holding_registers(addr, count=2, device_id=1)
            model_id, length = rr.registers
            if model_id == 0xFFFF:
                break
            if model_id == 203:
                found = (addr, length)
            addr += 2 + length
        assert found is not None and found[1] == 105, "model 203 (L = 105) in the chain"
        start = found[0]
        regs: list[int] = []
        for off in range(0, 107, 100):  # ID, L and 105 data registers, at most 100 per request
            rr = await client.read_holding_registers(start + off, count=min(100, 107 - off), device_id=1)
            assert not rr.isError()
            regs += list(rr.registers)
    finally:
        client.close()
    assert regs[0] == 203
    out: dict[str, float] = {}
    for name, sf_name in SF_OF.items():
        o = M203[name]
        raw = (regs[o] << 16 | regs[o + 1]) if name in ACC32 else _s16(regs[o])
        out[name] = raw * 10.0 ** _s16(regs[M203[sf_name]])
    return out


@pytest.fixture(scope="module")
def small_region(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """HV grid - 25 MVA HV/MV - 20 kV bus - stations S1 (0.4 MVA) and S2 (0.63 MVA); houses h1, h2 on S1, h3 on S2."""
    return two_station_region(tmp_path_factory.mktemp("region"))


@pytest.fixture
def truth(small_region: Any) -> Iterator[GridTruth]:
    yield GridTruth(small_region, {"b001": 0, "b002": 1, "b003": 2})


#: S1 imports (two houses, 40 kW), S2 exports (PV feed-in, 25 kW).
POWERS_KW = {"b001": 28.0, "b002": 12.0, "b003": -25.0}


async def test_model_203_registers_are_the_grid_truths_station_flow(truth: GridTruth, tmp_path: Path) -> None:
    async with Substations(truth, out_dir=tmp_path) as subs:
        first = await subs.update(POWERS_KW, 0.0)
        second = await subs.update(POWERS_KW, 900.0)  # 15 min at these flows
        assert [s.site for s in subs.sites] == ["sub-s1", "sub-s2"]
        net = truth._net  # the solved pandapower net: the numbers the meter must carry
        for site in subs.sites:
            flow = second.station_flow[site.station]
            assert flow == first.station_flow[site.station]
            trafo = int(net.trafo.index[net.trafo.name == site.station][0])
            lv_bus = int(net.trafo.lv_bus.at[trafo])
            # load-positive into the LV network; the LV busbar's voltage and the LV-side current
            assert flow.p_kw == pytest.approx(-1000.0 * net.res_trafo.p_lv_mw.at[trafo])
            assert flow.v_ln_v == pytest.approx(net.res_bus.vm_pu.at[lv_bus] * 400.0 / math.sqrt(3.0))
            assert flow.i_a == pytest.approx(1000.0 * net.res_trafo.i_lv_ka.at[trafo])
            m = await read_model_203(site.port)
            assert m["W"] == pytest.approx(flow.p_kw * 1000.0, abs=50.0)  # W_SF 2: 100 W steps
            assert m["WphA"] == pytest.approx(flow.p_kw * 1000.0 / 3.0, abs=50.0)
            assert m["VAR"] == pytest.approx(flow.q_kvar * 1000.0, abs=50.0)
            assert m["VA"] == pytest.approx(math.hypot(flow.p_kw, flow.q_kvar) * 1000.0, abs=50.0)
            assert m["PF"] == pytest.approx(100.0 * flow.p_kw / math.hypot(flow.p_kw, flow.q_kvar), abs=0.05)
            for v in ("PhV", "PhVphA", "PhVphB", "PhVphC"):
                assert m[v] == pytest.approx(flow.v_ln_v, abs=0.05)
            assert m["PhVphAB"] == pytest.approx(flow.v_ln_v * math.sqrt(3.0), abs=0.05)
            for a in ("AphA", "AphB", "AphC"):
                assert m[a] == pytest.approx(flow.i_a, abs=0.05)
            assert m["A"] == pytest.approx(3.0 * flow.i_a, abs=0.05)
            assert m["Hz"] == 50.0
            e_wh = flow.p_kw * 1000.0 * 0.25
            assert m["TotWhImp"] == pytest.approx(max(e_wh, 0.0), abs=0.5)
            assert m["TotWhExp"] == pytest.approx(max(-e_wh, 0.0), abs=0.5)
        s1, s2 = (second.station_flow[s] for s in ("S1", "S2"))
        assert 40.0 < s1.p_kw < 41.0 and -25.0 < s2.p_kw < -24.0  # the houses plus their lines' losses
        assert s2.v_ln_v > s1.v_ln_v  # feed-in lifts the busbar


async def test_agent_publishes_the_substation_meter_from_its_generated_yaml(
    truth: GridTruth, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    async with Substations(truth, out_dir=tmp_path, broker_port=mosquitto.port) as subs:
        interval = await subs.update(POWERS_KW, 3600.0)  # one hour at these flows
        site = read_substation_sites(tmp_path)[0]
        assert site.site == substation_site_id("S1") and site.port == subs.servers["S1"].port
        flow = interval.station_flow["S1"]
        config = load_config(site.config)
        async with Cloud(site.site, mosquitto.port).running() as cloud, running_agent(config):
            keys = [
                Points.METER_P_KW, Points.METER_Q_KVAR, Points.METER_V_LN_V, Points.METER_I_A,
                Points.METER_F_HZ, Points.METER_E_IMPORT_KWH, Points.METER_E_EXPORT_KWH,
            ]  # fmt: skip
            await cloud.wait_for(lambda: all(cloud.values(*k) for k in keys))
            got = {k: cloud.values(*k)[0] for k in keys}
    assert all(s.quality == "good" for s in got.values())
    assert got[Points.METER_P_KW].value == pytest.approx(flow.p_kw, abs=0.05)
    assert got[Points.METER_P_KW].unit == "kW"
    assert got[Points.METER_Q_KVAR].value == pytest.approx(flow.q_kvar, abs=0.05)
    assert got[Points.METER_V_LN_V].value == pytest.approx(flow.v_ln_v, abs=0.05)
    assert got[Points.METER_I_A].value == pytest.approx(flow.i_a, abs=0.05)
    assert got[Points.METER_F_HZ].value == 50.0
    assert got[Points.METER_E_IMPORT_KWH].value == pytest.approx(flow.p_kw, abs=0.001)
    assert got[Points.METER_E_EXPORT_KWH].value == 0.0
