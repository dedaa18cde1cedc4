"""The InfluxDB back end against a real server speaking the InfluxDB v2 write API on loopback.

Debian's `victoria-metrics` accepts `/api/v2/write` (line protocol); `make test` installs it.
The controller ingests telemetry from MQTT, and what it wrote is read back from the
server's export API and compared sample by sample.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import httpx
import pytest

from cloud_controller.config import CloudConfig
from cloud_controller.live.types import AssetRef, SiteRef
from cloud_controller.registry import Registry
from cloud_controller.service import CloudController
from gridflex.ops.broker import MosquittoBroker, free_port, wait_for_port
from protocols.clock import RealClock
from protocols.codec import encode
from protocols.messages import Sample, TelemetryBatch
from protocols.topics import site_topic

pytestmark = pytest.mark.integration

VM = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"


@pytest.fixture
def victoria(tmp_path: Path) -> Iterator[int]:
    if not Path(VM).exists():
        pytest.fail("victoria-metrics is not installed (make test installs it with apt-get)")
    port = free_port()
    proc = subprocess.Popen(
        [
            VM,
            f"-httpListenAddr=127.0.0.1:{port}",
            f"-storageDataPath={tmp_path / 'vm'}",
            "-loggerLevel=ERROR",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout_s=20)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_samples_written_to_influx_read_back(
    mosquitto: MosquittoBroker, victoria: int, tmp_path: Path
) -> None:
    (tmp_path / "token").write_text("test-token\n")
    cfg = CloudConfig.model_validate(
        {
            "broker": {"port": mosquitto.port, "client_id": "influx-test"},
            "store": {
                "kind": "influxdb",
                "path": str(tmp_path / "s.sqlite"),
                "url": f"http://127.0.0.1:{victoria}",
                "token_file": str(tmp_path / "token"),
            },
            "control": {"dispatch": False},
            "api": {"enabled": False},
        }
    )
    registry = Registry(sites=(SiteRef("b001", 0, (AssetRef("meter", "meter"),)),))
    ctl = CloudController(cfg, registry, clock=RealClock())
    task = asyncio.create_task(ctl.run())
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=4)  # VictoriaMetrics refuses future times
    samples = [
        Sample(
            seq=i,
            asset="meter",
            point="p_kw",
            value=round(0.25 * i - 3.0, 3),
            unit="kW",
            ts=t0 + timedelta(seconds=60 * i),
        )
        for i in range(200)
    ]
    try:
        await ctl.session.wait_connected(10)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as site:
            for k in range(0, 200, 50):
                batch = TelemetryBatch(site="b001", ts=t0, samples=samples[k : k + 50])
                await site.publish(site_topic("b001", "telemetry"), encode(batch), qos=1)
        async with asyncio.timeout(20):
            while ctl.ingest.sink is None or ctl.ingest.sink.stats.lines_written < 200:
                await asyncio.sleep(0.1)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{victoria}") as http:
        await http.get("/internal/force_flush")
        rows: list[dict[str, object]] = []
        async with asyncio.timeout(20):
            while not rows:
                r = await http.get(
                    "/api/v1/export",
                    params={
                        "match[]": '{__name__="telemetry_value",site="b001"}',
                        "start": (t0 - timedelta(hours=1)).isoformat(),
                    },
                )
                rows = [json.loads(line) for line in r.text.splitlines() if line.strip()]
                await asyncio.sleep(0.2)
    assert len(rows) == 1 and rows[0]["metric"]["point"] == "p_kw"  # type: ignore[index]
    got = dict(zip(rows[0]["timestamps"], rows[0]["values"], strict=True))  # type: ignore[call-overload]
    want = {int(s.ts.timestamp() * 1000): s.value for s in samples}
    assert got == want
