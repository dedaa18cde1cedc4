"""`gridflex broker` (both back ends) serves standard clients: paho and mosquitto_sub/pub."""

from __future__ import annotations

import queue
import shutil
import signal
import subprocess
import sys
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gridflex.ops.broker import free_port, wait_for_port

pytestmark = pytest.mark.integration


@pytest.fixture(params=["mosquitto", "amqtt"])
def broker_port(request: pytest.FixtureRequest):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridflex", "broker", "--port", str(port), "--backend", request.param],
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout_s=20)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        assert proc.returncode == 0, err.decode()
        assert b"broker stopped" in err


def _client(port: int, name: str) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=name)  # MQTT 3.1.1: both back ends speak it
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def test_paho_publisher_reaches_paho_subscriber(broker_port: int) -> None:
    inbox: queue.Queue[paho.MQTTMessage] = queue.Queue()
    sub = _client(broker_port, "sub")
    pub = _client(broker_port, "pub")
    try:
        sub.on_message = lambda c, u, m: inbox.put(m)
        sub.subscribe("gridflex/v1/site/+/telemetry", qos=1)
        time.sleep(0.3)
        pub.publish("gridflex/v1/site/b001/telemetry", b"hello", qos=1).wait_for_publish(5)
        message = inbox.get(timeout=5)
        assert (message.topic, message.payload) == ("gridflex/v1/site/b001/telemetry", b"hello")
    finally:
        for client in (sub, pub):
            client.loop_stop()
            client.disconnect()


@pytest.mark.skipif(shutil.which("mosquitto_sub") is None, reason="mosquitto-clients not installed")
def test_mosquitto_command_line_clients(broker_port: int) -> None:
    sub = subprocess.Popen(
        [
            "mosquitto_sub",
            "-p",
            str(broker_port),
            "-h",
            "127.0.0.1",
            "-t",
            "gridflex/v1/site/b002/state",
            "-C",
            "1",
            "-W",
            "10",
        ],
        stdout=subprocess.PIPE,
    )
    time.sleep(0.5)
    subprocess.run(
        [
            "mosquitto_pub",
            "-p",
            str(broker_port),
            "-h",
            "127.0.0.1",
            "-t",
            "gridflex/v1/site/b002/state",
            "-m",
            "online",
            "-q",
            "1",
        ],
        check=True,
        timeout=10,
    )
    out, _ = sub.communicate(timeout=15)
    assert out.strip() == b"online"
