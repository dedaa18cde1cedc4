"""MQTT session helper on aiomqtt (MQTT v5), shared by the edge agent and the controller.

What it adds to aiomqtt, each for a reason measured or documented:
- reconnect with capped, jittered backoff (aiomqtt does not reconnect by itself);
- persistent session (clean start off + session expiry), so QoS 1 messages sent while
  we were away are delivered when we return;
- a last will, so the site's retained `state` turns `offline` when we vanish;
- TLS that verifies the broker's certificate and host name, with an optional client
  certificate (mutual TLS, the deployment default: the broker takes our identity from it);
- TCP_NODELAY on the socket (with Nagle on, a command round trip costs ~88 ms, not ~1 ms);
- optional manual acknowledgements (`manual_ack`): a QoS 1 message is acknowledged only
  once the future its handler returns is done (protocols/mqtt_acks.py);
- every publish result checked: paho refuses publishes silently (rc=15) once 65,535
  messages are in flight; aiomqtt turns a bad rc into an exception and we surface it
  as `PublishError`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from protocols import _paho_speedup, mqtt_bounded
from protocols.backoff import Backoff
from protocols.errors import ConfigError, GridflexError
from protocols.mqtt_acks import AckQueue

__all__ = [
    "MqttConfig",
    "MqttSession",
    "NotConnectedError",
    "PublishError",
    "Will",
    "tls_context_for",
]

log = logging.getLogger(__name__)

_paho_speedup.install()

#: A handler may return a future: with `manual_ack` the message's PUBACK waits for it.
MessageHandler = Callable[[aiomqtt.Message], Awaitable["asyncio.Future[None] | None"]]
ConnectHook = Callable[["MqttSession"], Awaitable[None]]


class NotConnectedError(GridflexError):
    """Publish attempted while the session is not connected; retry after `connected` is set."""


class PublishError(GridflexError):
    """The client library or broker refused a publish."""


class MqttConfig(BaseModel):
    """Broker connection settings (part of every service's YAML config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str = Field(default="", max_length=128)
    username: str | None = None
    password: SecretStr | None = None
    protocol: Literal["5", "3.1.1"] = "5"
    tls: bool = False
    #: CA bundle the broker's certificate must chain to (None = the system's trust store).
    ca_file: Path | None = None
    #: Client certificate and key (mutual TLS: the broker takes the certificate's name as username).
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    session_expiry_s: int = Field(default=3600, ge=0, le=2**32 - 1)
    clean_start: bool = False
    connect_timeout_s: float = Field(default=10.0, gt=0)
    publish_timeout_s: float = Field(default=10.0, gt=0)
    max_inflight: int = Field(default=1000, ge=1, le=65535)
    reconnect_min_s: float = Field(default=0.2, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _tls_files(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (a client certificate needs its key)")
        if not self.tls and (self.ca_file or self.cert_file):
            raise ValueError("ca_file/cert_file/key_file need tls: true")
        return self


def tls_context_for(cfg: MqttConfig) -> ssl.SSLContext:
    """A client TLS context: the broker's certificate verified, host name checked, our certificate offered.

    `create_default_context` turns on `check_hostname` and `CERT_REQUIRED`, so a broker
    whose certificate does not name the host we dial is refused. Unreadable or mismatched
    files raise `ConfigError` naming the file, at session set-up rather than on every
    reconnect.
    """
    try:
        ctx = ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the CA file: {exc}", file=str(cfg.ca_file), key="ca_file") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cfg.cert_file is not None and cfg.key_file is not None:
        try:
            ctx.load_cert_chain(str(cfg.cert_file), str(cfg.key_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cannot load the client certificate/key ({cfg.key_file}): {exc}",
                file=str(cfg.cert_file),
                key="cert_file",
            ) from None
    return ctx


@dataclass(frozen=True, slots=True)
class Will:
    """Last will: published by the broker when this client disappears without DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


async def _drain(client: aiomqtt.Client) -> AsyncIterator[aiomqtt.Message]:
    """Yield received messages; take queued ones directly, wait only when the queue is empty.

    aiomqtt's own iterator creates a task and an `asyncio.wait` per message (~30 us);
    under load the queue is rarely empty, so the fast path skips that. `_queue` is
    aiomqtt's (pinned in uv.lock); the iterator still signals disconnects.
    """
    queue: asyncio.Queue[aiomqtt.Message] = client._queue
    iterator = client.messages
    while True:
        try:
            message = queue.get_nowait()
        except asyncio.QueueEmpty:
            message = await anext(iterator)
        yield message


class MqttSession:
    """A long-lived MQTT connection that reconnects by itself.

    `run(handler)` connects, subscribes, calls `on_connect`, then feeds every received
    message to `handler` until cancelled; on any connection loss it waits a jittered
    backoff and connects again. `publish()` is safe to call from other tasks.
    """

    def __init__(
        self,
        config: MqttConfig,
        *,
        subscriptions: Sequence[tuple[str, int]] = (),
        will: Will | None = None,
        on_connect: ConnectHook | None = None,
        backoff: Backoff | None = None,
        manual_ack: bool = False,
    ) -> None:
        self.config = config
        self.manual_ack = manual_ack
        self.acks: AckQueue | None = None  # this connection's pending PUBACKs (manual_ack only)
        self.subscriptions = list(subscriptions)
        self.will = will
        self.on_connect = on_connect
        self.connected = asyncio.Event()
        self.connect_count = 0
        self._client: aiomqtt.Client | None = None
        # Built once: a bad certificate file fails here, not as a reconnect loop.
        self._tls_context = tls_context_for(config) if config.tls else None
        self._backoff = backoff or Backoff(min_s=config.reconnect_min_s, max_s=config.reconnect_max_s)

    def _make_client(self) -> aiomqtt.Client:
        cfg = self.config
        will = None
        if self.will is not None:
            will = aiomqtt.Will(
                self.will.topic, self.will.payload, qos=self.will.qos, retain=self.will.retain
            )
        session_args: dict[str, Any]
        if cfg.protocol == "5":
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = cfg.session_expiry_s
            session_args = {
                "protocol": aiomqtt.ProtocolVersion.V5,
                "clean_start": cfg.clean_start,
                "properties": properties,
            }
        else:  # 3.1.1 (the in-process amqtt demo broker speaks nothing newer)
            session_args = {"protocol": aiomqtt.ProtocolVersion.V311, "clean_session": cfg.clean_start}
        return aiomqtt.Client(
            cfg.host,
            cfg.port,
            identifier=cfg.client_id or None,
            username=cfg.username,
            password=cfg.password.get_secret_value() if cfg.password else None,
            will=will,
            keepalive=cfg.keepalive_s,
            timeout=mqtt_bounded.UNBOUNDED,  # bounded in mqtt_bounded (3.11's wait_for loses cancels)
            tls_context=self._tls_context,
            max_inflight_messages=cfg.max_inflight,
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            **session_args,
        )

    async def run(self, handler: MessageHandler | None = None) -> None:
        """Stay connected until cancelled, dispatching messages to `handler`."""
        while True:
            try:
                client = self._make_client()
                acks = self._ack_queue(client)
                async with mqtt_bounded.connection(client, self.config.connect_timeout_s):
                    self._client = client
                    for topic, qos in self.subscriptions:
                        await mqtt_bounded.subscribe(client, topic, qos, self.config.connect_timeout_s)
                    self.connect_count += 1
                    self._backoff.reset()
                    self.connected.set()
                    log.info(
                        "MQTT connected to %s:%s as %r",
                        self.config.host,
                        self.config.port,
                        self.config.client_id,
                    )
                    if self.on_connect is not None:
                        await self.on_connect(self)
                    async for message in _drain(client):
                        entry = acks.add(message.mid) if acks is not None and message.qos == 1 else None
                        outcome: object = None
                        if handler is not None:
                            try:
                                outcome = await handler(message)
                            except Exception:  # a bad handler must not take the session down
                                log.exception("MQTT message handler failed on topic %s", message.topic)
                        if acks is not None and entry is not None:
                            acks.settle(entry, outcome)
            except aiomqtt.MqttError as exc:
                self._on_lost()
                delay_s = self._backoff.next_delay_s()
                log.warning(
                    "MQTT connection to %s:%s lost (%s); retry in %.2f s",
                    self.config.host,
                    self.config.port,
                    exc,
                    delay_s,
                )
                await asyncio.sleep(delay_s)
            except BaseException:
                self._on_lost()
                raise

    def _ack_queue(self, client: aiomqtt.Client) -> AckQueue | None:
        """With `manual_ack`: paho's automatic PUBACK off (before connecting), and the queue that sends them."""
        if not self.manual_ack:
            self.acks = None
            return None
        paho = client._client  # aiomqtt exposes no manual-ack switch; paho's is public API
        paho.manual_ack_set(True)
        self.acks = AckQueue(send=lambda mid: paho.ack(mid, 1), abort=paho.disconnect)
        return self.acks

    def _on_lost(self) -> None:
        self.connected.clear()
        self._client = None
        if self.acks is not None:
            self.acks.close()  # unacknowledged messages come again on the next connection

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Publish and, for QoS 1, wait for the broker's PUBACK; raise if it cannot be done."""
        client = self._client
        if client is None or not self.connected.is_set():
            raise NotConnectedError(f"not connected to {self.config.host}:{self.config.port}")
        try:
            await mqtt_bounded.publish(
                client, topic, payload, qos=qos, retain=retain, timeout_s=self.config.publish_timeout_s
            )
        except aiomqtt.MqttCodeError as exc:
            raise PublishError(f"publish to {topic!r} refused: {exc}") from exc
        except aiomqtt.MqttError as exc:
            raise NotConnectedError(f"publish to {topic!r} failed: {exc}") from exc

    async def wait_connected(self, timeout_s: float) -> None:
        """Wait until connected, or raise TimeoutError."""
        async with asyncio.timeout(timeout_s):
            await self.connected.wait()
