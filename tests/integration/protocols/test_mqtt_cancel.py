"""A task cancelled while it publishes stops, every time; the publish timeout still holds.

On Python 3.11 aiomqtt's `wait_for` lost the cancellation when the PUBACK landed in the
same loop iteration (82 of 200 cancellations here before `protocols/mqtt_bounded.py`): the
task carried on and a TaskGroup around it never finished.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal

import aiomqtt
import pytest

from gridflex.ops.broker import MosquittoBroker
from protocols.mqtt import MqttConfig, MqttSession, NotConnectedError

pytestmark = pytest.mark.integration

CANCELS = 200


async def test_a_task_cancelled_mid_publish_stops_all_200_times(mosquitto: MosquittoBroker) -> None:
    session = MqttSession(MqttConfig(host="127.0.0.1", port=mosquitto.port, client_id="pub"))
    runner = asyncio.create_task(session.run())
    published = 0

    async def publish_forever() -> None:
        nonlocal published
        while True:
            await session.publish("t/cancel", b"x", qos=1)
            published += 1

    rng = random.Random(7)
    still_running: list[int] = []
    try:
        await session.wait_connected(10)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="sub") as sub:
            await sub.subscribe("t/cancel", qos=1)
            for i in range(CANCELS):
                task = asyncio.create_task(publish_forever())
                await asyncio.sleep(rng.uniform(0, 0.003))  # lands inside a publish's wait
                task.cancel()
                done, _ = await asyncio.wait({task}, timeout=2)
                if not done:
                    still_running.append(i)
                    task.cancel()
                    await asyncio.wait({task}, timeout=2)
                else:
                    assert task.cancelled()
            received = len(sub.messages)  # the publishes were real: the broker delivered them
    finally:
        runner.cancel()
        done, _ = await asyncio.wait({runner}, timeout=10)
    assert still_running == [], f"{len(still_running)} of {CANCELS} cancellations lost"
    assert done == {runner} and runner.cancelled()  # the session itself stops on one cancel
    assert published >= CANCELS // 2 and received >= published // 2


async def test_a_publish_to_a_frozen_broker_times_out_as_not_connected(mosquitto: MosquittoBroker) -> None:
    session = MqttSession(
        MqttConfig(host="127.0.0.1", port=mosquitto.port, client_id="pub", publish_timeout_s=0.5)
    )
    runner = asyncio.create_task(session.run())
    assert mosquitto.pid is not None
    try:
        await session.wait_connected(10)
        os.kill(mosquitto.pid, signal.SIGSTOP)  # no PUBACK will come
        try:
            async with asyncio.timeout(5):
                with pytest.raises(NotConnectedError, match=r"timed out after 0\.5 s"):
                    await session.publish("t/frozen", b"x", qos=1)
        finally:
            os.kill(mosquitto.pid, signal.SIGCONT)
    finally:
        runner.cancel()
        done, _ = await asyncio.wait({runner}, timeout=15)
    assert done == {runner}
