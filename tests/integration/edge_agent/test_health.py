"""`/healthz` and Prometheus `/metrics` of a running agent, and its retained flex envelope."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from gridflex.ops.broker import MosquittoBroker

from .cloud import Cloud
from .helpers import make_config, running_agent
from .servers import ModbusServer

pytestmark = pytest.mark.integration


async def test_health_metrics_and_flex(mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    server = await ModbusServer().start()
    await server.set_holding(202, [500])  # battery at 50 %

    def health_on(data: dict[str, Any]) -> None:
        data["health"] = {"host": "127.0.0.1", "port": 0}

    try:
        cfg = make_config(tmp_path, broker_port=mosquitto.port, modbus_port=server.port, overrides=health_on)
        async with Cloud("t1", mosquitto.port).running() as cloud, running_agent(cfg) as agent:
            await cloud.wait_for(lambda: cloud.samples and agent.health_port and agent.stats.published > 0)
            await cloud.wait_for(lambda: any(a.soc_pct == 50.0 for f in cloud.flex for a in f.assets))
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{agent.health_port}", timeout=5) as http:
                health = await http.get("/healthz")
                assert health.status_code == 200 and health.json()["status"] == "ok"
                assert health.json()["connected"] is True
                metrics = (await http.get("/metrics")).text
                assert "gridflex_edge_queue_depth" in metrics
                assert 'gridflex_edge_commands_total{status="applied"} 0.0' in metrics
                published = next(
                    float(line.split()[-1])
                    for line in metrics.splitlines()
                    if line.startswith("gridflex_edge_samples_published_total")
                )
                assert published >= 1
                assert (await http.get("/nope")).status_code == 404
            bat = next(a for f in cloud.flex for a in f.assets if a.asset == "bat1" and a.soc_pct == 50.0)
            assert bat.e_now_kwh == 5.0 and bat.intervals[0].p_max_kw > 0 > bat.intervals[0].p_min_kw
    finally:
        await server.stop()
