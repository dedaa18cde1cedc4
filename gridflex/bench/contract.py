"""`gridflex bench contract`'s measurements: the codec in-process, the MQTT path through Mosquitto.

The MQTT figures come from a real Mosquitto child process on loopback, with the
publisher in a separate process so the subscriber's figures are one process's ingest
capacity (the publisher's own CPU does not compete with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import socket
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Literal

from protocols.assets import BATTERY
from protocols.codec import decode, encode
from protocols.messages import Command, Sample, TelemetryBatch
from protocols.topics import site_topic

__all__ = ["TOPIC", "codec_figures", "mqtt_ingest_figures", "telemetry"]

TS = datetime(2030, 1, 15, 17, 0, tzinfo=UTC)
TOPIC = site_topic("b001", "telemetry")


def telemetry(n_samples: int, msg_id: str = "m") -> TelemetryBatch:
    """A battery telemetry batch of `n_samples` samples at a fixed time, the payload being timed."""
    return TelemetryBatch(
        site="b001",
        ts=TS,
        msg_id=msg_id,
        samples=[
            Sample(seq=i, asset=BATTERY, point="p_kw", value=1.25 + i, unit="kW", ts=TS)
            for i in range(n_samples)
        ],
    )


def _per_call_us(fn: object, n: int) -> float:
    call = fn  # typed loosely: a zero-argument callable
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            call()  # type: ignore[operator]
        best = min(best, (time.perf_counter() - t0) / n * 1e6)
    return best


def codec_figures(n: int = 20_000) -> dict[str, float]:
    """Microseconds per call, best of three runs."""
    one = encode(telemetry(1))
    fifty = encode(telemetry(50))
    cmd = Command(
        site="b001",
        ts=TS,
        cmd_id="c1",
        asset=BATTERY,
        kind="p_setpoint_kw",
        value=-3.0,
        valid_from=TS,
        valid_until=TS + timedelta(minutes=15),
    )
    figures = {
        "decode telemetry x1 (us)": _per_call_us(lambda: decode(TOPIC, one), n),
        "decode telemetry x50 (us)": _per_call_us(lambda: decode(TOPIC, fifty), max(1, n // 20)),
        "encode command (us)": _per_call_us(lambda: encode(cmd), n),
    }
    figures["decode x1 msgs/s (one core)"] = 1e6 / figures["decode telemetry x1 (us)"]
    figures["payload bytes x1"] = len(one)
    return figures


def _publisher(port: int, n: int, qos: int, rate_per_s: float | None, ready: object) -> None:
    """Runs in its own process: publish `n` single-sample batches (msg_id = send time ns)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{qos}", protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    sock = client.socket()
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.loop_start()
    ready.wait(10)  # type: ignore[attr-defined]
    template = encode(telemetry(1, msg_id="0" * 19))
    interval = 1.0 / rate_per_s if rate_per_s else 0.0
    next_t = time.perf_counter()
    for _ in range(n):
        payload = template.replace(b'"0000000000000000000"', f'"{time.time_ns():019d}"'.encode())
        info = client.publish(TOPIC, payload, qos=qos)
        while info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:  # checked: paho refuses silently otherwise
            time.sleep(0.001)
            info = client.publish(TOPIC, payload, qos=qos)
        if interval:
            next_t += interval
            delay = next_t - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    time.sleep(0.5)
    client.loop_stop()
    client.disconnect()


async def mqtt_ingest_figures(
    port: int, n: int, qos: int, rate_per_s: float | None, protocol: Literal["5", "3.1.1"] = "5"
) -> dict[str, float]:
    """Subscribe with our MqttSession, decode every message, time the lot (msgs/s, p50/p99 ms)."""
    from protocols.mqtt import MqttConfig, MqttSession

    received = 0
    latencies_ms: list[float] = []
    first_t = last_t = 0.0
    done = asyncio.Event()

    async def handler(message: object) -> None:
        nonlocal received, first_t, last_t
        now_ns = time.time_ns()
        msg = decode(str(message.topic), message.payload)  # type: ignore[attr-defined]
        latencies_ms.append((now_ns - int(msg.msg_id)) / 1e6)
        if received == 0:
            first_t = time.perf_counter()
        received += 1
        last_t = time.perf_counter()
        if received >= n:
            done.set()

    session = MqttSession(
        MqttConfig(port=port, client_id=f"bench-sub-{qos}", clean_start=True, protocol=protocol),
        subscriptions=[(TOPIC, qos)],
    )
    task = asyncio.create_task(session.run(handler))
    await session.wait_connected(10)
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_publisher, args=(port, n, qos, rate_per_s, ready))
    proc.start()
    ready.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), timeout=60 + (n / rate_per_s if rate_per_s else 0))
    proc.join(30)
    task.cancel()
    elapsed = max(last_t - first_t, 1e-9)
    latencies_ms.sort()
    return {
        "received": received,
        "sent": n,
        "msgs/s": (received - 1) / elapsed if received > 1 else 0.0,
        "p50 ms": statistics.median(latencies_ms) if latencies_ms else float("nan"),
        "p99 ms": latencies_ms[int(0.99 * (len(latencies_ms) - 1))] if latencies_ms else float("nan"),
    }
