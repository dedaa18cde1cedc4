"""A dead ingest worker's share of the shared subscription goes to the others once its session expires.

Real Mosquitto, the controller's own ingest sessions (`service_setup.mqtt_session`): two
ingest workers share `$share/gridflex-ingest/...`; worker A goes away without a clean
disconnect. While A's session lives the broker keeps handing it messages (they wait in
its queue); after `broker.ingest_session_expiry_s` every message goes to worker B.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from cloud_controller import CloudConfig
from cloud_controller.service_setup import mqtt_session
from gridflex.ops.broker import MosquittoBroker
from protocols.mqtt import MqttConfig, MqttSession

TOPIC = "gridflex/v1/site/b001/telemetry"
N_MESSAGES = 20


def _config(port: int, worker: str, expiry_s: int) -> CloudConfig:
    return CloudConfig.model_validate(
        {
            "broker": {
                "host": "127.0.0.1",
                "port": port,
                "client_id": f"gridflex-cloud-{worker}",
                "ingest_session_expiry_s": expiry_s,
            }
        }
    )


async def _noop(_session: MqttSession) -> None:
    return None


async def _received_by_b_after_a_dies(port: int, expiry_s: int) -> tuple[int, int]:
    """(messages B received, messages published), publishing 1.5 s after A's session expired or 2.5 s after A died."""
    got_b: list[bytes] = []

    async def on_b(message: Any) -> None:
        got_b.append(bytes(message.payload))

    a = mqtt_session(_config(port, "a", expiry_s), "ingest", on_connect=_noop)
    b = mqtt_session(_config(port, "b", expiry_s), "ingest", on_connect=_noop)
    assert a.config.session_expiry_s == expiry_s and a.config.client_id == "gridflex-cloud-a-ingest"
    task_a = asyncio.create_task(a.run())
    task_b = asyncio.create_task(b.run(on_b))
    publisher = MqttSession(MqttConfig(host="127.0.0.1", port=port, client_id="test-pub", clean_start=True))
    task_p = asyncio.create_task(publisher.run())
    try:
        await asyncio.wait_for(asyncio.gather(a.connected.wait(), b.connected.wait()), 10)
        await asyncio.wait_for(publisher.connected.wait(), 10)
        task_a.cancel()  # A goes away: its session stays on the broker for expiry_s
        with contextlib.suppress(asyncio.CancelledError):
            await task_a
        await asyncio.sleep(min(expiry_s, 1.0) + 1.5)
        for k in range(N_MESSAGES):
            await publisher.publish(TOPIC, f"sample {k}".encode(), qos=1)
        for _ in range(50):  # up to 5 s for B's deliveries
            if len(got_b) >= N_MESSAGES:
                break
            await asyncio.sleep(0.1)
        return len(got_b), N_MESSAGES
    finally:
        for task in (task_b, task_p):
            task.cancel()
        await asyncio.gather(task_b, task_p, return_exceptions=True)


def test_after_a_dead_workers_session_expires_the_other_worker_gets_every_message(
    mosquitto: MosquittoBroker,
) -> None:
    got, sent = asyncio.run(_received_by_b_after_a_dies(mosquitto.port, expiry_s=1))
    assert got == sent == N_MESSAGES


def test_while_the_dead_workers_session_lives_the_broker_still_hands_it_messages(
    mosquitto: MosquittoBroker,
) -> None:
    # the reason for a short ingest expiry: with an hour, A's share waits in its queue
    got, sent = asyncio.run(_received_by_b_after_a_dies(mosquitto.port, expiry_s=3600))
    assert 0 < got < sent


def test_only_the_ingest_role_gets_the_short_session_expiry() -> None:
    cfg = CloudConfig.model_validate({"broker": {"ingest_session_expiry_s": 45, "session_expiry_s": 7200}})
    sessions = {role: mqtt_session(cfg, role, on_connect=_noop) for role in ("ingest", "dispatch", "all")}
    assert {r: s.config.session_expiry_s for r, s in sessions.items()} == {
        "ingest": 45,
        "dispatch": 7200,
        "all": 7200,
    }
