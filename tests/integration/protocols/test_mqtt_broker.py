"""The MQTT contract against a real Mosquitto: persistence, last will, retained state, ACL isolation."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator

import aiomqtt
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gridflex.ops.broker import MosquittoBroker
from protocols import SiteState, decode, encode
from protocols.examples import EXAMPLE_TS
from protocols.mqtt import MqttConfig, MqttSession, Will
from protocols.topics import SiteTopic, site_topic

pytestmark = pytest.mark.integration


async def _collect(session: MqttSession, into: list[aiomqtt.Message]) -> None:
    async def handler(message: aiomqtt.Message) -> None:
        into.append(message)

    await session.run(handler)


async def _wait_for(predicate, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.01)


@pytest.fixture
async def publisher(mosquitto: MosquittoBroker) -> AsyncIterator[MqttSession]:
    session = MqttSession(MqttConfig(port=mosquitto.port, client_id="test-publisher", clean_start=True))
    task = asyncio.create_task(session.run())
    await session.wait_connected(5)
    yield session
    task.cancel()


async def test_qos1_persistent_session_receives_what_was_sent_while_away(
    mosquitto: MosquittoBroker, publisher: MqttSession
) -> None:
    topic = site_topic("b001", SiteTopic.CMD)
    config = MqttConfig(port=mosquitto.port, client_id="agent-b001", clean_start=False, session_expiry_s=600)
    received: list[aiomqtt.Message] = []
    subscriber = MqttSession(config, subscriptions=[(topic, 1)])
    task = asyncio.create_task(_collect(subscriber, received))
    await subscriber.wait_connected(5)
    await publisher.publish(topic, b"before", qos=1)
    await _wait_for(lambda: len(received) == 1)

    task.cancel()  # the subscriber goes away (its session stays on the broker)
    await asyncio.sleep(0.1)
    for i in range(5):
        await publisher.publish(topic, f"away-{i}".encode(), qos=1)

    received.clear()
    back = MqttSession(config)  # no re-subscription: the persistent session remembers it
    task = asyncio.create_task(_collect(back, received))
    await _wait_for(lambda: len(received) == 5)
    task.cancel()
    assert [m.payload for m in received] == [f"away-{i}".encode() for i in range(5)]


async def test_session_reconnects_after_broker_restart(mosquitto: MosquittoBroker) -> None:
    topic = site_topic("b001", SiteTopic.CMD)
    received: list[aiomqtt.Message] = []
    config = MqttConfig(port=mosquitto.port, client_id="agent-r", reconnect_min_s=0.05, reconnect_max_s=0.2)
    session = MqttSession(config, subscriptions=[(topic, 1)])
    task = asyncio.create_task(_collect(session, received))
    await session.wait_connected(5)
    mosquitto.stop()
    await _wait_for(lambda: not session.connected.is_set())
    mosquitto.start()
    await _wait_for(lambda: session.connected.is_set() and session.connect_count == 2, timeout_s=10)
    await session.publish(topic, b"after-restart")
    await _wait_for(lambda: len(received) == 1)
    task.cancel()


async def test_publish_while_disconnected_raises(mosquitto: MosquittoBroker) -> None:
    from protocols.mqtt import NotConnectedError

    session = MqttSession(MqttConfig(port=mosquitto.port, client_id="never-started"))
    with pytest.raises(NotConnectedError):
        await session.publish("gridflex/v1/site/a/state", b"x")


WILL_CLIENT = textwrap.dedent(
    """
    import asyncio, sys
    from protocols.mqtt import MqttConfig, MqttSession, Will
    port, topic, will = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode()
    async def main():
        session = MqttSession(MqttConfig(port=port, client_id="agent-will", keepalive_s=5),
                              will=Will(topic, will))
        task = asyncio.create_task(session.run())
        await session.wait_connected(5)
        print("connected", flush=True)
        await task
    asyncio.run(main())
    """
)


async def test_last_will_publishes_offline_when_client_is_killed(
    mosquitto: MosquittoBroker, publisher: MqttSession
) -> None:
    topic = site_topic("b001", SiteTopic.STATE)
    offline = SiteState(site="b001", ts=EXAMPLE_TS, status="offline", reason="connection lost")
    online = SiteState(site="b001", ts=EXAMPLE_TS, status="online")
    proc = subprocess.Popen(
        [sys.executable, "-c", WILL_CLIENT, str(mosquitto.port), topic, encode(offline).decode()],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 15)
        assert line.strip() == b"connected"
        await publisher.publish(topic, encode(online), retain=True)
        os.kill(proc.pid, signal.SIGKILL)  # a crash: no DISCONNECT, so the broker sends the will
        proc.wait(5)
    finally:
        if proc.poll() is None:
            proc.kill()
    received: list[aiomqtt.Message] = []
    watcher = MqttSession(MqttConfig(port=mosquitto.port, client_id="watcher"), subscriptions=[(topic, 1)])
    task = asyncio.create_task(_collect(watcher, received))
    await _wait_for(lambda: any(decode(str(m.topic), m.payload) == offline for m in received))
    task.cancel()


async def test_retained_state_reaches_a_late_subscriber(
    mosquitto: MosquittoBroker, publisher: MqttSession
) -> None:
    topic = site_topic("b007", SiteTopic.STATE)
    state = SiteState(site="b007", ts=EXAMPLE_TS, status="fallback", reason="cloud silent")
    await publisher.publish(topic, encode(state), retain=True)
    received: list[aiomqtt.Message] = []
    late = MqttSession(
        MqttConfig(port=mosquitto.port, client_id="late"), subscriptions=[("gridflex/v1/site/+/state", 1)]
    )
    task = asyncio.create_task(_collect(late, received))
    await _wait_for(lambda: len(received) == 1)
    task.cancel()
    assert received[0].retain
    assert decode(str(received[0].topic), received[0].payload) == state


def _paho(port: int, user: str, password: str) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"acl-{user}", protocol=paho.MQTTv5)
    client.username_pw_set(user, password)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def test_acl_isolates_sites(mosquitto_acl) -> None:
    """Site `a` can neither read nor publish on site `b`'s topics (checked with paho, not our helper).

    Mosquitto 2.0 grants the SUBACK of a forbidden subscription but never delivers on it,
    so isolation is asserted on what arrives, which is what matters.
    """
    import queue
    import time

    pw = mosquitto_acl.passwords
    got_a: queue.Queue[paho.MQTTMessage] = queue.Queue()
    got_b: queue.Queue[paho.MQTTMessage] = queue.Queue()
    site_b = _paho(mosquitto_acl.port, "b", pw["b"])
    site_a = _paho(mosquitto_acl.port, "a", pw["a"])
    cloud = _paho(mosquitto_acl.port, "cloud", pw["cloud"])
    try:
        site_a.on_message = lambda c, u, m: got_a.put(m)
        site_b.on_message = lambda c, u, m: got_b.put(m)
        time.sleep(0.3)
        site_b.subscribe(site_topic("b", "cmd"), qos=1)
        site_a.subscribe("gridflex/v1/site/+/cmd", qos=1)  # a tries to read every site's commands
        site_a.subscribe(site_topic("b", "stored"), qos=1)
        time.sleep(0.3)

        site_a.publish(site_topic("b", "cmd"), b"forged-by-a", qos=1).wait_for_publish(5)
        site_a.publish(site_topic("b", "telemetry"), b"forged-by-a", qos=1).wait_for_publish(5)
        cloud.publish(site_topic("b", "cmd"), b"for-b", qos=1).wait_for_publish(5)
        cloud.publish(site_topic("b", "stored"), b"for-b", qos=1).wait_for_publish(5)
        cloud.publish(site_topic("a", "cmd"), b"for-a", qos=1).wait_for_publish(5)

        assert got_b.get(timeout=5).payload == b"for-b"
        assert got_a.get(timeout=5).payload == b"for-a"
        time.sleep(0.5)
        assert got_b.empty(), "b received a forged command from a"
        assert got_a.empty(), "a received something addressed to b"
    finally:
        for client in (site_a, site_b, cloud):
            client.loop_stop()
            client.disconnect()


def test_wrong_password_is_refused(mosquitto_acl) -> None:
    import time

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="intruder", protocol=paho.MQTTv5)
    client.username_pw_set("a", "not-the-password")
    client.connect("127.0.0.1", mosquitto_acl.port)
    client.loop_start()
    time.sleep(0.5)
    try:
        assert not client.is_connected()
    finally:
        client.loop_stop()


def test_will_is_a_frozen_value() -> None:
    will = Will("t", b"x")
    with pytest.raises(AttributeError):
        will.topic = "u"  # type: ignore[misc]
