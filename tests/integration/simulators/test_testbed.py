"""TestBed end to end on loopback: generated site YAMLs match the live servers, controls act on physics."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from pymodbus.client import AsyncModbusTcpClient

from device_templates import expand_site
from protocols.clock import SimClock
from protocols.testbed import Manifest
from simulators.fleet import SiteSpec
from simulators.testbed import TestBed, TestBedConfig

pytestmark = pytest.mark.integration

START = datetime(2030, 1, 15, 17, 30, tzinfo=UTC)  # a January evening


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def bed(tmp_path: Path) -> AsyncIterator[TestBed]:
    clock = SimClock(START)
    cfg = TestBedConfig(n_sites=3, seed=2, start=START, bacnet=True, broker_port=18830)
    async with asyncio.timeout(60), TestBed(cfg, clock, tmp_path) as tb:
        clock.advance(1.0)
        tb.step(1.0)
        yield tb


def _decode(regs: list[int], type_: str) -> int:
    if type_ in ("int32", "uint32"):
        raw = (regs[0] << 16) | regs[1]
        return raw - (1 << 32) if type_ == "int32" and raw >= 1 << 31 else raw
    raw = regs[0]
    return raw - 0x10000 if type_ == "int16" and raw >= 0x8000 else raw


async def _read_point(client: AsyncModbusTcpClient, p: dict[str, Any], unit: int) -> float:
    """The documented rule: engineering = sign * (raw * scale * 10**sf + offset)."""
    n = 2 if p["type"] in ("int32", "uint32") else 1
    rr = await client.read_holding_registers(p["address"], count=n, device_id=unit)
    assert not rr.isError(), (p, rr)
    raw = _decode(list(rr.registers), p["type"])
    sf = 0
    if "sf_address" in p:
        sr = await client.read_holding_registers(p["sf_address"], count=1, device_id=unit)
        sf = _decode(list(sr.registers), "int16")
    return float(p.get("sign", 1.0) * (raw * p.get("scale", 1.0) * 10.0**sf + p.get("offset", 0.0)))


async def _write_point(client: AsyncModbusTcpClient, p: dict[str, Any], unit: int, value: float) -> None:
    sf = 0
    if "sf_address" in p:
        sr = await client.read_holding_registers(p["sf_address"], count=1, device_id=unit)
        sf = _decode(list(sr.registers), "int16")
    raw = round((value / p.get("sign", 1.0) - p.get("offset", 0.0)) / (p.get("scale", 1.0) * 10.0**sf))
    if p["type"] in ("int32", "uint32"):
        u = raw & 0xFFFF_FFFF
        rq = await client.write_registers(p["address"], [u >> 16, u & 0xFFFF], device_id=unit)
    else:
        rq = await client.write_register(p["address"], raw & 0xFFFF, device_id=unit)
    assert not rq.isError(), (p, value, rq)


def _expected(bed: TestBed, site: str, asset: str, point: str) -> float | None:
    b = bed.buildings[site]
    table: dict[tuple[str, str], Any] = {
        ("meter", "p_kw"): lambda: b.meter.p_kw,
        ("pv1", "p_kw"): lambda: b.pv.p_kw,  # type: ignore[union-attr]
        ("bat1", "soc_pct"): lambda: b.battery.soc_pct,  # type: ignore[union-attr]
        ("bat1", "p_kw"): lambda: b.battery.p_kw,  # type: ignore[union-attr]
        ("ev1", "p_kw"): lambda: b.ev.p_kw,  # type: ignore[union-attr]
        ("hp1", "p_kw"): lambda: b.hp.p_kw,  # type: ignore[union-attr]
        ("hp1", "t_tank_c"): lambda: b.hp.t_tank_c,  # type: ignore[union-attr]
    }
    f = table.get((asset, point))
    return None if f is None else float(f())


def _expanded(path: Path) -> dict[str, Any]:
    """The site YAML with its `template:` devices expanded, as the agent sees it."""
    doc: dict[str, Any] = expand_site(yaml.safe_load(path.read_text()), file=str(path), base=path.parent)
    return doc


async def test_site_yamls_match_the_live_servers(bed: TestBed, tmp_path: Path) -> None:
    manifest = Manifest.load(tmp_path / "manifest.json")
    assert manifest == bed.manifest
    assert [s.site for s in manifest.sites] == ["b001", "b002", "b003"]
    kinds = {a.kind for s in manifest.sites for a in s.assets}
    assert kinds == {"meter", "pv", "battery", "ev", "hp", "hvac"}
    checked = 0
    async with asyncio.timeout(60):
        for sm in manifest.sites:
            doc = _expanded(sm.config)
            assert doc["site"] == sm.site
            assert doc["broker"] == {"host": "127.0.0.1", "port": 18830, "tls": None, "keepalive_s": 30}
            assert doc["health"]["port"] is None
            assert Path(doc["buffer"]["path"]).parent == tmp_path / "state"
            devices = {d["id"]: d for d in doc["devices"]}
            assert devices["bms"]["address"] == sm.bacnet.address if sm.bacnet else "bms" not in devices
            for e in sm.modbus:
                assert (devices[e.device]["host"], devices[e.device]["port"]) == (e.host, e.port)
            clients: dict[str, AsyncModbusTcpClient] = {}
            try:
                for asset in doc["assets"]:
                    for kind in ("ev", "hp"):
                        if asset["kind"] == kind:
                            assert asset["limits"]["p_guaranteed_min_kw"] == 4.2
                    for p in asset["points"]:
                        dev = devices[p["device"]]
                        if dev["driver"] != "modbus":
                            assert ":" in p["object"]
                            continue
                        if p["device"] not in clients:
                            c = AsyncModbusTcpClient(dev["host"], port=dev["port"], timeout=1.0, retries=0)
                            assert await c.connect()
                            clients[p["device"]] = c
                        value = await _read_point(clients[p["device"]], p, dev["unit_id"])
                        checked += 1
                        want = _expected(bed, sm.site, asset["id"], p["name"])
                        if want is not None:
                            assert value == pytest.approx(want, abs=0.02), (sm.site, asset["id"], p["name"])
            finally:
                for c in clients.values():
                    c.close()
    assert checked >= 25


async def test_site_yamls_pass_the_edge_agent_config_loader(bed: TestBed) -> None:
    config = pytest.importorskip("edge_agent.config")
    for sm in bed.manifest.sites:
        cfg = config.load_config(sm.config)
        assert cfg.site == sm.site


async def test_controls_written_as_the_yaml_says_act_on_the_physics(bed: TestBed) -> None:
    async with asyncio.timeout(60):
        for sm in bed.manifest.sites:
            doc = _expanded(sm.config)
            devices = {d["id"]: d for d in doc["devices"]}
            b = bed.buildings[sm.site]
            for asset in doc["assets"]:
                points = {p["name"]: p for p in asset["points"]}
                for kind, ctl in asset.get("controls", {}).items():
                    p = points[ctl["point"]]
                    dev = devices[p["device"]]
                    if dev["driver"] != "modbus":
                        continue
                    command = {"p_limit_kw": 4.2 if asset["kind"] != "pv" else 2.0, "p_setpoint_kw": -2.0}[
                        kind
                    ]
                    c = AsyncModbusTcpClient(dev["host"], port=dev["port"], timeout=1.0, retries=0)
                    assert await c.connect()
                    try:
                        if "enable" in ctl:
                            en = points[ctl["enable"]["point"]]
                            await _write_point(c, en, dev["unit_id"], ctl["enable"]["value"])
                        await _write_point(
                            c, p, dev["unit_id"], command * ctl.get("factor", 1.0) + ctl.get("offset", 0.0)
                        )
                        read_back = await _read_point(
                            c, points[ctl.get("read_back", ctl["point"])], dev["unit_id"]
                        )
                        assert read_back == pytest.approx(command * ctl.get("factor", 1.0), abs=0.01)
                    finally:
                        c.close()
            bed.clock.advance(60.0)  # type: ignore[attr-defined]
            bed.step(60.0)
            if b.pv is not None:
                assert -b.pv.p_kw <= 2.0 + 1e-6
                assert b.pv.limit_enabled
            if b.battery is not None:
                assert b.battery.remote and b.battery.setpoint_kw == pytest.approx(-2.0)
            if b.ev is not None:
                assert b.ev.p_limit_kw == pytest.approx(4.2) and b.ev.p_kw <= 4.2 + 1e-9
            if b.hp is not None:
                assert b.hp.p_limit_kw == pytest.approx(4.2) and b.hp.p_kw <= 4.2 + 1e-9


async def test_run_steps_on_the_clock_and_faults_reach_the_server(bed: TestBed) -> None:
    clock = bed.clock
    assert isinstance(clock, SimClock)
    steps0 = bed.steps
    task = asyncio.create_task(bed.run())
    try:
        async with asyncio.timeout(10):
            await clock.step(10.0)
        assert bed.steps - steps0 == 10
    finally:
        task.cancel()
    bed.fault("b001", "meter", "exception")
    e = bed.manifest.site("b001").endpoint("meter")
    c = AsyncModbusTcpClient(e.host, port=e.port, timeout=1.0, retries=0)
    try:
        async with asyncio.timeout(10):
            assert await c.connect()
            rr = await c.read_holding_registers(40000, count=2, device_id=e.unit_id)
            assert rr.isError() and rr.exception_code == 4
    finally:
        c.close()
    with pytest.raises(KeyError):
        bed.fault("b001", "nope", "silent")


async def test_ports_are_free_after_exit(tmp_path: Path) -> None:
    clock = SimClock(START)
    async with asyncio.timeout(60):
        async with TestBed(TestBedConfig(n_sites=2, seed=2, start=START, bacnet=True), clock, tmp_path) as tb:
            ports = tb.ports()
        assert ports and {p for p, _ in ports} == {"tcp", "udp"}
        for proto, port in ports:
            kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
            with socket.socket(socket.AF_INET, kind) as s:
                s.bind(("127.0.0.1", port))  # would raise if still held


async def test_explicit_specs_give_exactly_those_buildings(tmp_path: Path) -> None:
    specs = (
        SiteSpec(
            site="pvbat",
            index=0,
            annual_kwh=3000.0,
            heat_annual_kwh=9000.0,
            pv_kwp=10.0,
            battery_kwh=10.0,
            battery_kw=4.0,
        ),
        SiteSpec(site="plain", index=1, annual_kwh=2500.0, heat_annual_kwh=8000.0),
    )
    cfg = TestBedConfig(n_sites=2, specs=specs, start=START, bacnet=False)
    async with asyncio.timeout(30), TestBed(cfg, SimClock(START), tmp_path) as tb:
        assert list(tb.buildings) == ["pvbat", "plain"]
        assert sorted(tb.modbus["pvbat"]) == ["battery", "meter", "pv"]
        assert sorted(tb.modbus["plain"]) == ["meter"]
        doc = yaml.safe_load(tb.manifest.site("pvbat").config.read_text())
        pv = next(a for a in doc["assets"] if a["kind"] == "pv")
        assert pv["p_nominal_kw"] == 10.0 and pv["controls"]["p_limit_kw"]["factor"] == 10.0
        assert tb.buildings["pvbat"].battery.capacity_kwh == 10.0  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="specs"):
        TestBedConfig(n_sites=3, specs=specs)


async def test_the_site_configs_carry_the_beds_modbus_timeout(tmp_path: Path) -> None:
    """A saturated bed's devices answer late: its agents' Modbus timeout is the bed's, 4 s here."""
    clock = SimClock(START)
    cfg = TestBedConfig(n_sites=2, seed=2, start=START, bacnet=False, broker_port=18830, modbus_timeout_s=4.0)
    async with asyncio.timeout(60), TestBed(cfg, clock, tmp_path) as tb:
        timeouts = {
            (site.site, d["id"]): d["timeout_s"]
            for site in tb.manifest.sites
            for d in yaml.safe_load(site.config.read_text())["devices"]
            if d["driver"] == "modbus"
        }
    assert len(timeouts) >= 4 and set(timeouts.values()) == {4.0}
    with pytest.raises(ValueError, match="modbus_timeout_s"):
        TestBedConfig(n_sites=1, modbus_timeout_s=0.0)
