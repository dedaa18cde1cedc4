"""The agent's MQTT session and what it says on `state`: the will, the status, the goodbye.

Split out of `edge_agent.agent`: these build the connection settings from the site
config and the `SiteState` messages (`offline` as the will and on a clean stop,
`online` / `fallback` / `degraded` while running); the agent owns when they are sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Literal

from edge_agent.config import SiteConfig
from edge_agent.health import AgentStats
from protocols.clock import Clock
from protocols.codec import encode
from protocols.errors import GridflexError
from protocols.messages import SiteState
from protocols.mqtt import MqttConfig, MqttSession, Will

__all__ = ["AGENT_VERSION", "make_session", "say_goodbye", "site_state"]

AGENT_VERSION = "0.1.0"


def make_session(
    config: SiteConfig,
    clock: Clock,
    topics: dict[str, str],
    on_connect: Callable[[MqttSession], Awaitable[None]],
) -> MqttSession:
    """The MQTT session: subscribed to `cmd` and `stored`, with `offline` as its will.

    The client id asked for is `gridflex-edge-<site>`; a broker that binds ids to
    credentials (`use_username_as_clientid`, as `deploy-config`'s does) replaces it with
    the site's username or certificate name, so no other client can take it over.
    """
    cfg = config
    broker = cfg.broker
    mqtt = MqttConfig(
        host=broker.host,
        port=broker.port,
        client_id=f"gridflex-edge-{cfg.site}",
        username=broker.username,
        password=broker.password,
        tls=broker.tls is not None,
        ca_file=broker.tls.ca_file if broker.tls else None,
        cert_file=broker.tls.cert_file if broker.tls else None,
        key_file=broker.tls.key_file if broker.tls else None,
        keepalive_s=broker.keepalive_s,
        publish_timeout_s=5.0,
        reconnect_max_s=10.0,
    )
    offline = SiteState(
        site=cfg.site,
        ts=clock.now(),
        status="offline",
        agent_version=AGENT_VERSION,
        config_hash=cfg.config_hash,
    )
    return MqttSession(
        mqtt,
        subscriptions=[(topics["cmd"], 1), (topics["stored"], 1)],
        will=Will(topics["state"], encode(offline)),
        on_connect=on_connect,
    )


async def say_goodbye(session: MqttSession | None, config: SiteConfig, clock: Clock, topic: str) -> None:
    """A clean stop sends no will, so publish `offline` ourselves (best effort, bounded)."""
    if session is None or not session.connected.is_set():
        return
    state = SiteState(
        site=config.site,
        ts=clock.now(),
        status="offline",
        agent_version=AGENT_VERSION,
        config_hash=config.config_hash,
        reason="agent stopped",
    )
    try:
        async with asyncio.timeout(1.0):
            await session.publish(topic, encode(state), qos=1, retain=True)
    except (TimeoutError, GridflexError):
        pass


def site_state(config: SiteConfig, clock: Clock, stats: AgentStats, reason: str | None = None) -> SiteState:
    """The running agent's `state`: fallback, else degraded (with its reason) if a fault stands, else online."""
    status: Literal["fallback", "online", "degraded"] = "online"
    if stats.state == "fallback":
        status = "fallback"
    elif stats.degraded is not None:
        status, reason = "degraded", reason or stats.degraded
    return SiteState(
        site=config.site,
        ts=clock.now(),
        status=status,
        agent_version=AGENT_VERSION,
        config_hash=config.config_hash,
        reason=reason[:500] if reason else None,
    )
