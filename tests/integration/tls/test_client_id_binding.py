"""Password path: client ids bound to usernames (`use_username_as_clientid`), so no site can take the controller's.

Without the binding, any site's credentials with the id `gridflex-cloud-all` disconnect
the controller and resume its persistent session; the ACL keeps the intruder from
reading what was queued, so those messages are lost to the controller. The unbound
broker is run too, so the test shows the attack it stops.
"""

from __future__ import annotations

import asyncio
import secrets
import threading

import aiomqtt
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gridflex.ops.broker import MosquittoBroker, site_acl
from protocols.mqtt import MqttConfig, MqttSession
from protocols.topics import site_topic
from tests.integration.tls.conftest import CLOUD_ID

pytestmark = pytest.mark.integration

OTHER_CLOUD = "gridflex-cloud-dispatch"


def _intruder(port: int, password: str) -> tuple[paho.Client, list[bytes], list[object]]:
    """Site a's credentials asking for the controller's id and its persistent session."""
    got: list[bytes] = []
    connack: list[object] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=CLOUD_ID, protocol=paho.MQTTv5)
    client.username_pw_set("a", password)
    client.on_message = lambda _c, _u, m: got.append(bytes(m.payload))
    client.on_connect = lambda _c, _u, _f, rc, _p: connack.append(rc)
    client.connect("127.0.0.1", port, clean_start=False)
    client.loop_start()
    return client, got, connack


async def _wait(predicate: object, what: str) -> None:
    async with asyncio.timeout(10):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("bound", [True, False], ids=["bound", "unbound-shows-the-attack"])
async def test_site_credentials_cannot_take_over_the_controllers_id_or_session(bound: bool) -> None:
    pw = {name: secrets.token_urlsafe(12) for name in (CLOUD_ID, OTHER_CLOUD, "a", "b")}
    acl = site_acl(cloud_users=[CLOUD_ID, OTHER_CLOUD])
    with MosquittoBroker(users=pw, acl=acl, bind_client_id=bound) as broker:
        received: list[bytes] = []

        async def handler(message: aiomqtt.Message) -> None:
            received.append(bytes(message.payload))

        def controller() -> MqttSession:
            cfg = MqttConfig(port=broker.port, client_id=CLOUD_ID, username=CLOUD_ID, password=pw[CLOUD_ID])
            return MqttSession(cfg, subscriptions=[("gridflex/v1/site/+/ack", 1)])

        ctl = controller()
        task = asyncio.create_task(ctl.run(handler))
        await ctl.wait_connected(10)
        site = MqttSession(MqttConfig(port=broker.port, client_id="site-b", username="b", password=pw["b"]))
        site_task = asyncio.create_task(site.run())
        await site.wait_connected(10)
        # The controller goes away for a moment; its session keeps what arrives meanwhile.
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for i in range(3):
            await site.publish(site_topic("b", "ack"), f"queued {i}".encode())
        intruder, stolen, connack = await asyncio.to_thread(_intruder, broker.port, pw["a"])
        try:
            await _wait(lambda: connack, "intruder CONNACK")
            # Barrier: a message to the intruder's own cmd topic, sent after it connected.
            done = threading.Event()
            intruder.on_subscribe = lambda *_a: done.set()
            intruder.subscribe(site_topic("a", "cmd"), qos=1)
            assert await asyncio.to_thread(done.wait, 10)
            other = MqttSession(
                MqttConfig(
                    port=broker.port, client_id=OTHER_CLOUD, username=OTHER_CLOUD, password=pw[OTHER_CLOUD]
                )
            )
            other_task = asyncio.create_task(other.run())
            await other.wait_connected(10)
            await other.publish(site_topic("a", "cmd"), b"barrier")
            await _wait(lambda: b"barrier" in stolen, "barrier at the intruder")
            ctl = controller()
            task = asyncio.create_task(ctl.run(handler))
            await ctl.wait_connected(10)
            await site.publish(site_topic("b", "ack"), b"after")
            await _wait(lambda: b"after" in received, "live ack at the controller")
            assert stolen == [b"barrier"], "the intruder read the controller's queued messages"
            if bound:
                assert sorted(received) == [b"after", b"queued 0", b"queued 1", b"queued 2"]
            else:  # the attack the binding stops: the intruder took the session, the queue is gone
                assert received == [b"after"]
            other_task.cancel()
            await asyncio.gather(other_task, return_exceptions=True)
        finally:
            intruder.loop_stop()
            intruder.disconnect()
            for t in (task, site_task):
                t.cancel()
            await asyncio.gather(task, site_task, return_exceptions=True)


async def test_controller_stays_connected_while_site_credentials_ask_for_its_id() -> None:
    """Online case: the intruder is connected (as `a`) and the controller's session was never dropped."""
    pw = {name: secrets.token_urlsafe(12) for name in (CLOUD_ID, "a")}
    with MosquittoBroker(users=pw, acl=site_acl(cloud_users=[CLOUD_ID]), bind_client_id=True) as broker:
        received: list[bytes] = []

        async def handler(message: aiomqtt.Message) -> None:
            received.append(bytes(message.payload))

        cfg = MqttConfig(port=broker.port, client_id=CLOUD_ID, username=CLOUD_ID, password=pw[CLOUD_ID])
        ctl = MqttSession(cfg, subscriptions=[("gridflex/v1/site/+/ack", 1)])
        task = asyncio.create_task(ctl.run(handler))
        intruder = None
        try:
            await ctl.wait_connected(10)
            intruder, _stolen, connack = await asyncio.to_thread(_intruder, broker.port, pw["a"])
            await _wait(lambda: connack, "intruder CONNACK")
            assert not connack[0].is_failure  # type: ignore[attr-defined]
            info = intruder.publish(site_topic("a", "ack"), b"from the intruder", qos=1)
            await asyncio.to_thread(info.wait_for_publish, 10)
            await _wait(lambda: b"from the intruder" in received, "the intruder's ack at the controller")
            assert ctl.connect_count == 1 and ctl.connected.is_set()
        finally:
            if intruder is not None:
                intruder.loop_stop()
                intruder.disconnect()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
