"""aiomqtt's waits (connect, subscribe, publish, disconnect) bounded by `asyncio.timeout`, not `wait_for`.

Why: aiomqtt bounds each wait with `asyncio.wait_for`, and on Python 3.11 `wait_for`
swallows a cancellation that arrives in the same loop iteration as the result
(CPython gh-86296, fixed in 3.12 by rewriting `wait_for` on `asyncio.timeout`). A task
cancelled while its QoS 1 PUBACK lands then carries on as if never cancelled: a
`TaskGroup` waits for it forever and the process never stops (a controller's watermark
loop kept publishing after the test cancelled the controller; a 300-task cancel test
lost dozens of cancellations). With the client's own timeout set to infinity
aiomqtt awaits the future directly, and the bound is applied here, where cancellation
is counted correctly. A timeout surfaces as `aiomqtt.MqttError`, as aiomqtt's would.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiomqtt

__all__ = ["UNBOUNDED", "connection", "publish", "subscribe"]

log = logging.getLogger(__name__)

#: the client's own timeout: aiomqtt then awaits its futures without `wait_for`
UNBOUNDED = math.inf


@asynccontextmanager
async def connection(client: aiomqtt.Client, timeout_s: float) -> AsyncIterator[aiomqtt.Client]:
    """Connect within `timeout_s`; on the way out, disconnect within `timeout_s` (a failure is logged).

    The way out never replaces the exception that ends the block (a cancellation stays a
    cancellation: a disconnect that fails must not turn it into a reconnect).
    """
    try:
        async with asyncio.timeout(timeout_s):
            await client.__aenter__()
    except TimeoutError as exc:
        raise aiomqtt.MqttError(f"connect timed out after {timeout_s} s") from exc
    try:
        yield client
    finally:
        try:
            async with asyncio.timeout(timeout_s):
                await client.__aexit__(None, None, None)
        except (TimeoutError, aiomqtt.MqttError) as exc:
            log.warning("MQTT disconnect not clean: %s", exc or type(exc).__name__)


async def subscribe(client: aiomqtt.Client, topic: str, qos: int, timeout_s: float) -> None:
    """Subscribe and wait for the SUBACK within `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s):
            await client.subscribe(topic, qos=qos)
    except TimeoutError as exc:
        raise aiomqtt.MqttError(f"subscribe to {topic!r} timed out after {timeout_s} s") from exc


async def publish(
    client: aiomqtt.Client, topic: str, payload: bytes, *, qos: int, retain: bool, timeout_s: float
) -> None:
    """Publish and, for QoS 1, wait for the PUBACK within `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s):
            await client.publish(topic, payload, qos=qos, retain=retain)
    except TimeoutError as exc:
        raise aiomqtt.MqttError(f"publish to {topic!r} timed out after {timeout_s} s") from exc
