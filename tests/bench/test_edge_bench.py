"""Edge agent figures (`pytest -m bench -s tests/bench/test_edge_bench.py`): printed, with loose floors.

- points polled/s (one Modbus device, 1,000 points, coalesced reads)
- replay throughput after an outage (queued samples -> Mosquitto, QoS 1, batched)
- command receipt -> write -> read-back -> ack, p50/p99 (through Mosquitto, real Modbus device)
- device read -> broker -> subscriber latency p50/p99 at 10 Hz
- RSS and CPU of `gridflex edge` polling 1,000 points at 1 Hz (1,000 points/s)
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.buffer import SampleBuffer
from edge_agent.config import ModbusDevice, PointConfig, load_config
from edge_agent.drivers import ModbusDriver, PointRef
from edge_agent.poller import PendingSample
from gridflex.ops.broker import MosquittoBroker
from protocols.messages import Command
from tests.integration.edge_agent.cloud import Cloud
from tests.integration.edge_agent.helpers import make_config, running_agent, site_dict, write_site
from tests.integration.edge_agent.servers import ModbusServer

pytestmark = [pytest.mark.bench, pytest.mark.integration]


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def _thousand_points(port: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    device = {"id": "big", "driver": "modbus", "host": "127.0.0.1", "port": port, "timeout_s": 2.0}
    points = [
        {
            "name": f"p{i:04d}",
            "device": "big",
            "table": "holding",
            "address": i,
            "type": "uint16",
            "scale": 0.1,
            "unit": "kW",
        }
        for i in range(1000)
    ]
    return device, points


async def test_points_polled_per_second() -> None:
    server = await ModbusServer(size=1100).start()
    try:
        dev_cfg, points = _thousand_points(server.port)
        driver = ModbusDriver(ModbusDevice.model_validate(dev_cfg))
        refs = [PointRef("a", PointConfig.model_validate(p)) for p in points]
        await driver.read(refs)
        n, t0 = 20, time.perf_counter()
        for _ in range(n):
            got = await driver.read(refs)
        dt = time.perf_counter() - t0
        assert len(got) == 1000
        rate = n * 1000 / dt
        print(f"\n[edge] points polled/s (1 device, 1,000 uint16 points, 8 coalesced reads): {rate:,.0f}")
        assert rate > 5_000
        await driver.close()
    finally:
        await server.stop()


async def test_replay_throughput(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    n = 100_000
    data = site_dict(tmp_path, broker_port=mosquitto.port, modbus_port=1)
    data["devices"], data["assets"] = [], []
    data["cloud"] = {"watermark": False}  # PUBACK frees rows: no cloud needed for the figure
    cfg = load_config(write_site(tmp_path, data))
    buf = SampleBuffer(cfg.buffer.path, max_rows=10 * n, max_age_s=1e9)
    t0 = datetime.now(UTC)
    chunk = [
        PendingSample("pv1", "p_kw", float(i), "kW", t0 + timedelta(milliseconds=i), "good", None)
        for i in range(1000)
    ]
    for _ in range(n // 1000):
        buf.append(chunk)
    buf.close()
    async with running_agent(cfg) as agent:
        start = time.perf_counter()
        while agent.stats.published < n:
            await asyncio.sleep(0.005)
            assert time.perf_counter() - start < 60
        dt = time.perf_counter() - start
    rate = n / dt
    print(
        f"\n[edge] replay throughput (100k queued samples, batches of {cfg.buffer.batch_max}, QoS 1): {rate:,.0f} samples/s"
    )
    assert rate > 20_000


def _cmd(i: int) -> Command:
    now = datetime.now(UTC)
    return Command.model_validate(
        {
            "site": "t1",
            "ts": now,
            "cmd_id": f"b{i}",
            "asset": "pv1",
            "kind": "p_limit_kw",
            "value": float(i % 8),
            "valid_from": now,
            "valid_until": now + timedelta(seconds=30),
        }
    )


async def test_command_ack_latency(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    server = await ModbusServer().start()
    try:
        cfg = make_config(tmp_path, broker_port=mosquitto.port, modbus_port=server.port, interval_s=1.0)
        async with Cloud("t1", mosquitto.port).running() as cloud, running_agent(cfg):
            await cloud.wait_for(lambda: cloud.states)
            lat_ms = []
            for i in range(300):
                t0 = time.perf_counter()
                await cloud.send(_cmd(i))
                await cloud.wait_for(lambda i=i: len(cloud.acks) > i)
                lat_ms.append((time.perf_counter() - t0) * 1000)
            assert all(a.status in ("applied", "clamped") for a in cloud.acks)
        p50, p99 = _pct(lat_ms, 50), _pct(lat_ms, 99)
        print(
            f"\n[edge] command receipt->write->read-back->ack round trip (cloud-side, 300 cmds): p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )
        assert p99 < 50
    finally:
        await server.stop()


async def test_read_to_broker_latency(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    server = await ModbusServer().start()

    def every_poll(data: dict[str, Any]) -> None:
        data["poll"]["max_age_s"] = 0.1

    try:
        cfg = make_config(
            tmp_path,
            broker_port=mosquitto.port,
            modbus_port=server.port,
            interval_s=0.1,
            overrides=every_poll,
        )
        async with Cloud("t1", mosquitto.port).running() as cloud, running_agent(cfg):
            await asyncio.sleep(6)
        lat_ms = [(cloud.received_at[seq] - s.ts).total_seconds() * 1000 for seq, s in cloud.samples.items()]
        p50, p99 = _pct(lat_ms, 50), _pct(lat_ms, 99)
        print(
            f"\n[edge] device read -> broker -> subscriber at 10 Hz ({len(lat_ms)} samples): p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )
        assert p99 < 50
    finally:
        await server.stop()


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def test_rss_and_cpu_at_1000_points(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    server = await ModbusServer(size=1100).start()
    try:
        data = site_dict(tmp_path, broker_port=mosquitto.port, modbus_port=server.port, interval_s=1.0)
        device, points = _thousand_points(server.port)
        data["devices"] = [device]
        data["assets"] = [{"id": "big", "kind": "other", "points": points}]
        data["poll"]["max_age_s"] = 1.0  # publish every point every second: 1,000 samples/s
        data["cloud"] = {"watermark": False}
        path = tmp_path / "big.yaml"
        path.write_text(yaml.safe_dump(data))
        log = (tmp_path / "agent.log").open("wb")
        proc = subprocess.Popen(
            [Path(sys.executable).parent / "gridflex", "edge", "--config", str(path)], stdout=log, stderr=log
        )
        try:
            async with Cloud("t1", mosquitto.port, watermark=False).running() as cloud:
                await cloud.wait_for(lambda: len(cloud.samples) > 2000, timeout_s=30)
                cpu0, t0, n0 = _cpu_s(proc.pid), time.monotonic(), len(cloud.arrivals)
                await asyncio.sleep(10)
                cpu1, t1, n1 = _cpu_s(proc.pid), time.monotonic(), len(cloud.arrivals)
                rss = _rss_mb(proc.pid)
            rate = (n1 - n0) / (t1 - t0)
            cpu_pct = 100 * (cpu1 - cpu0) / (t1 - t0)
            print(
                f"\n[edge] gridflex edge, 1,000 points at 1 Hz: {rate:,.0f} samples/s published, RSS {rss:.0f} MB, CPU {cpu_pct:.1f} % of one core"
            )
            assert rss < 150 and rate > 900
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)
            log.close()
    finally:
        await server.stop()
