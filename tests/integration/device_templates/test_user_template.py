"""A new device type added by a template file only: the simulator serves it from the file and the
edge agent, configured with `template: <that name>`, reads and writes it over real Modbus TCP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from device_templates import load_template
from edge_agent.config import ModbusDevice, load_config
from edge_agent.drivers import ModbusDriver, PointRef
from gridflex.ops.broker import MosquittoBroker
from simulators.modbus.template_map import template_server
from tests.integration.edge_agent.cloud import Cloud
from tests.integration.edge_agent.helpers import running_agent

pytestmark = pytest.mark.integration

ACME = """\
name: acme-heatmeter
driver: modbus
description: A heat meter no GridFlex code knows, with a writable flow limit.
registers:
  - {name: power, address: 300, type: int32, unit: W, value: -1234.0, doc: thermal power}
  - {name: energy, address: 302, type: uint32, unit: Wh, scale: 10, value: 56780.0}
  - {name: t_supply, address: 310, type: int16, unit: C, sf: -1, sf_address: 311, value: 61.5}
  - {name: flow_limit, address: 320, type: uint16, unit: "l/h", access: RW, min: 0, max: 2000, value: 800}
points:
  - {name: p_kw, role: hp, register: power, unit: kW, scale: 0.001, deadband: 0.01}
  - {name: e_heat_kwh, role: hp, register: energy, unit: kWh, scale: 0.001}
  - {name: t_supply_c, role: hp, register: t_supply, unit: degC}
  - {name: flow_limit_l_h, role: hp, register: flow_limit, unit: "l/h", writable: true, min: 0, max: 2000}
"""


async def test_a_device_type_from_a_template_file_is_served_and_read(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "acme-heatmeter.yaml").write_text(ACME)
    server = template_server(load_template(folder / "acme-heatmeter.yaml"), unit_id=4)
    await server.start()
    try:
        site = {
            "site": "b042",
            "template_dirs": ["templates"],
            "health": {"port": None},
            "devices": [
                {
                    "id": "heat",
                    "template": "acme-heatmeter",
                    "host": "127.0.0.1",
                    "port": server.port,
                    "unit_id": 4,
                    "overrides": {"flow_limit_l_h": {"max": 1500}},
                }
            ],
            "assets": [{"id": "hp1", "kind": "hp"}],
        }
        (tmp_path / "site.yaml").write_text(yaml.safe_dump(site))
        cfg = load_config(tmp_path / "site.yaml")
        asset = cfg.asset("hp1")
        assert [p.name for p in asset.points] == ["p_kw", "e_heat_kwh", "t_supply_c", "flow_limit_l_h"]
        assert asset.point("flow_limit_l_h").max == 1500
        device = cfg.device("heat")
        assert isinstance(device, ModbusDevice)
        driver = ModbusDriver.from_config(device)
        try:
            refs = [PointRef("hp1", p) for p in asset.points]
            async with asyncio.timeout(10):
                got = await driver.read(refs)
                assert {k: r.value for k, r in got.items()} == pytest.approx(
                    {
                        "hp1.p_kw": -1.234,
                        "hp1.e_heat_kwh": 56.78,
                        "hp1.t_supply_c": 61.5,
                        "hp1.flow_limit_l_h": 800.0,
                    }
                )
                await driver.write(asset.point("flow_limit_l_h"), 1200.0)
                again = await driver.read([refs[3]])
            assert again["hp1.flow_limit_l_h"].value == pytest.approx(1200.0)
            assert server.writes == 1
        finally:
            await driver.close()
    finally:
        await server.stop()


async def test_an_agent_runs_a_template_only_device_end_to_end(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """The whole edge agent, configured only by `template: acme-heatmeter`, publishes the device's values
    over a real Mosquitto to a cloud subscriber, scaled as the template says."""
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "acme-heatmeter.yaml").write_text(ACME)
    server = template_server(load_template(folder / "acme-heatmeter.yaml"), unit_id=4)
    await server.start()
    try:
        site = {
            "site": "b042",
            "template_dirs": ["templates"],
            "broker": {"host": "127.0.0.1", "port": mosquitto.port, "keepalive_s": 5},
            "buffer": {"path": str(tmp_path / "buf.sqlite")},
            "health": {"port": None},
            "poll": {"interval_s": 0.1, "max_age_s": 60},
            "devices": [
                {
                    "id": "heat",
                    "template": "acme-heatmeter",
                    "host": "127.0.0.1",
                    "port": server.port,
                    "unit_id": 4,
                }
            ],
            "assets": [{"id": "hp1", "kind": "hp"}],
        }
        (tmp_path / "site.yaml").write_text(yaml.safe_dump(site))
        cfg = load_config(tmp_path / "site.yaml")
        async with Cloud("b042", mosquitto.port).running() as cloud, running_agent(cfg):
            await cloud.wait_for(
                lambda: all(
                    cloud.values("hp1", p) for p in ("p_kw", "e_heat_kwh", "t_supply_c", "flow_limit_l_h")
                ),
                timeout_s=20,
            )
            got = {
                p: cloud.values("hp1", p)[0].value
                for p in ("p_kw", "e_heat_kwh", "t_supply_c", "flow_limit_l_h")
            }
        assert got == pytest.approx(
            {"p_kw": -1.234, "e_heat_kwh": 56.78, "t_supply_c": 61.5, "flow_limit_l_h": 800.0}
        )
        assert cloud.values("hp1", "p_kw")[0].unit == "kW"
    finally:
        await server.stop()
