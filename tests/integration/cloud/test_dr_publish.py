"""An accepted DR request is published on its programme's topic, retained, through the controller's session;
a cancel clears the retained message when no other request of the programme is live."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import httpx
import pytest

from cloud_controller.config import CloudConfig
from cloud_controller.registry import Registry
from cloud_controller.service import CloudController
from gridflex.ops.broker import MosquittoBroker
from protocols.clock import RealClock
from protocols.codec import decode
from protocols.messages import DRRequest
from protocols.topics import dr_request

pytestmark = pytest.mark.integration

TOKEN = "operator-0123456789abcdef"
CONTRACTS = """
contracts:
  - {site: a, program: peak, directions: [reduce], p_max_kw: 20, events_per_day: 2, max_duration: PT2H}
"""


async def test_accepted_request_is_retained_on_its_program_topic(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    (tmp_path / "token").write_text(TOKEN, encoding="utf-8")
    (tmp_path / "contracts.yaml").write_text(CONTRACTS, encoding="utf-8")
    cfg = CloudConfig.model_validate(
        {
            "broker": {"port": mosquitto.port, "client_id": "test-cloud-dr"},
            "store": {"path": str(tmp_path / "store.sqlite")},
            "control": {"dispatch": False},
            "api": {"port": 0, "operator_token_file": str(tmp_path / "token")},
            "dr": {"contracts": str(tmp_path / "contracts.yaml")},
        }
    )
    ctl = CloudController(cfg, Registry(sites=()), clock=RealClock())
    task = asyncio.create_task(ctl.run())
    try:
        async with asyncio.timeout(10):
            await ctl.session.wait_connected(10)
            while ctl.api_port is None:
                await asyncio.sleep(0.05)
        now = datetime.now(UTC)
        body = {
            "program": "peak",
            "ts": now.isoformat(),
            "request_id": "pub1",
            "start": (now + timedelta(hours=1)).isoformat(),
            "end": (now + timedelta(hours=2)).isoformat(),
            "direction": "reduce",
            "p_kw": 15.0,
        }
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ctl.api_port}", headers=auth) as http:
            posted = await http.post("/dr/requests", json=body)
            assert posted.status_code == 201, posted.text
            assert posted.json()["published"] is True and posted.json()["status"] == "selected"
            # a subscriber arriving afterwards still gets it: retained
            async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="dr-probe") as probe:
                await probe.subscribe(dr_request("peak"), qos=1)
                messages = aiter(probe.messages)
                async with asyncio.timeout(10):
                    msg = await anext(messages)
                assert msg.retain and str(msg.topic) == dr_request("peak")
                got = decode(str(msg.topic), bytes(msg.payload))
                assert isinstance(got, DRRequest) and got.request_id == "pub1" and got.p_kw == 15.0
                # cancelled, and no other live request of the programme: the retained message is cleared
                cancelled = await http.post("/dr/requests/pub1/cancel")
                assert cancelled.json()["status"] == "cancelled" and cancelled.json()["published"] is True
                async with asyncio.timeout(10):
                    cleared = await anext(messages)
                assert str(cleared.topic) == dr_request("peak") and bytes(cleared.payload) == b""
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
