"""`gridflex sim` as a subprocess: manifest and configs written, Modbus served, clean exit, ports freed."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient

from gridflex.loop.substations import SUBSTATIONS_FILE, SubstationSite, read_substation_sites
from protocols.errors import ConfigError
from protocols.testbed import Manifest

pytestmark = pytest.mark.integration

GRIDFLEX = Path(sys.executable).parent / "gridflex"


def _wait_manifest(proc: subprocess.Popen[bytes], out: Path, timeout_s: float = 40.0) -> Manifest:
    path = out / "manifest.json"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            try:
                return Manifest.load(path)
            except ConfigError:
                pass  # being written
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    raise AssertionError("no manifest")


def _wait_substations(
    proc: subprocess.Popen[bytes], out: Path, timeout_s: float = 60.0
) -> list[SubstationSite]:
    """The substation meters' listing, written once the region's grid truth is loaded (after the manifest)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (out / SUBSTATIONS_FILE).exists():
            try:
                return read_substation_sites(out)
            except ValueError:
                pass  # being written
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    raise AssertionError("no substations.json")


async def _read_substation(port: int) -> tuple[list[int], float]:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2.0, retries=0)
    try:
        async with asyncio.timeout(10):
            assert await client.connect()
            rr = await client.read_holding_registers(40070, count=16, device_id=1)
            assert not rr.isError()
            regs = list(rr.registers)
            return regs[:2], regs[7] * 10.0 ** (regs[15] - 0x10000 if regs[15] >= 0x8000 else regs[15])
    finally:
        client.close()


def _port_free(proto: str, port: int) -> bool:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def _read_suns(host: str, port: int) -> list[int]:
    client = AsyncModbusTcpClient(host, port=port, timeout=2.0, retries=0)
    try:
        async with asyncio.timeout(10):
            assert await client.connect()
            rr = await client.read_holding_registers(40000, count=2, device_id=1)
            assert not rr.isError()
            return list(rr.registers)
    finally:
        client.close()


async def _read_bacnet(address: str, obj: str) -> float:
    import BAC0

    from simulators.bacnet import free_udp_port, quiet_bac0

    quiet_bac0()
    async with asyncio.timeout(20), BAC0.start(ip="127.0.0.1/8", port=free_udp_port(), deviceId=4998) as c:
        return float(await c.read(f"{address} {obj} presentValue"))


def _ports(m: Manifest) -> list[tuple[str, int]]:
    out = [("tcp", e.port) for s in m.sites for e in s.modbus]
    out += [("udp", int(s.bacnet.address.rsplit(":", 1)[1])) for s in m.sites if s.bacnet]
    return out


async def test_sim_runs_for_its_duration_serves_and_exits_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    proc = subprocess.Popen(
        [str(GRIDFLEX), "sim", "--sites", "3", "--duration", "3", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        manifest = await asyncio.to_thread(_wait_manifest, proc, out)
        assert [s.site for s in manifest.sites] == ["b001", "b002", "b003"]
        assert all(s.config.exists() for s in manifest.sites)
        meter = manifest.sites[0].endpoint("meter")
        assert await _read_suns(meter.host, meter.port) == [0x5375, 0x6E53]
        bms = manifest.sites[0].bacnet
        assert bms is not None
        assert -30.0 < await _read_bacnet(bms.address, "analogInput 3") < 40.0  # outdoor °C, another process
        assert await _read_bacnet(bms.address, "analogValue 1") == 21.0
        substations = await asyncio.to_thread(_wait_substations, proc, out)
        assert [s.site for s in substations] == ["sub-t_idx_77", "sub-t_idx_118", "sub-t_idx_80"]
        assert all(s.config.exists() for s in substations)
        model, v_ln = await _read_substation(substations[0].port)
        assert model == [203, 105] and 200.0 < v_ln < 250.0  # SunSpec model 203, PhV (SF -1)
        stdout, stderr = await asyncio.to_thread(proc.communicate, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr.decode()
    text = stdout.decode()
    assert "steps" in text and "stopped" in text and "substation meters up" in text
    assert all(_port_free(p, n) for p, n in _ports(manifest))
    assert all(_port_free("tcp", s.port) for s in substations)


async def test_sim_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    proc = subprocess.Popen(
        [
            str(GRIDFLEX),
            "sim",
            "--sites",
            "2",
            "--speed",
            "60",
            "--no-bacnet",
            "--no-substations",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        manifest = await asyncio.to_thread(_wait_manifest, proc, out)
        assert all(s.bacnet is None for s in manifest.sites)
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.to_thread(proc.communicate, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr.decode()
    assert all(_port_free(p, n) for p, n in _ports(manifest))
