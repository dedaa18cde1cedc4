"""ACL isolation across 3 sites on one Mosquitto, on both paths of `gridflex deploy-config`.

Each site connects with its own credentials and tries, every round, to read every other
site's commands and watermark and to publish on every other site's topics. A message
"crossed" when a site receives one on another site's topic, or when something a site
published on another site's topic reaches the controller. `run` uses usernames and
passwords (`--auth password`); `certificate_isolation` the deployment default, mutual TLS
with the client certificate as the identity (`use_identity_as_username`, ids bound), and
also checks that a client without a certificate, or with one from another CA, is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping

import aiomqtt

from gridflex.chaos.context import Ctx
from gridflex.chaos.result import Result
from gridflex.ops.broker import BrokerTls, MosquittoBroker
from gridflex.ops.certs import LoopbackPki
from gridflex.ops.deploy_config import render_deployment, site_ids
from protocols.topics import ROOT, site_topic

__all__ = ["certificate_isolation", "run"]

CLOUD_USER = "cloud"  # the controller's broker identity here (deploy-config makes one per worker)

EDGE_KINDS = ("state", "telemetry", "flex", "ack", "event")
CLOUD_KINDS = ("cmd", "stored")


async def _client(port: int, user: str, password: str) -> aiomqtt.Client:
    client = aiomqtt.Client("127.0.0.1", port, identifier=f"chaos-{user}", username=user, password=password)
    await client.__aenter__()
    return client


async def _collect(client: aiomqtt.Client, into: list[tuple[str, bytes]]) -> None:
    async for msg in client.messages:
        payload = msg.payload if isinstance(msg.payload, bytes) else b""
        into.append((str(msg.topic), payload))


async def _refused(port: int, user: str, password: str | None) -> bool:
    """Whether the broker refuses this login."""
    try:
        async with (
            asyncio.timeout(10),
            aiomqtt.Client(
                "127.0.0.1", port, identifier=f"chaos-bad-{user}", username=user, password=password
            ),
        ):
            return False
    except (aiomqtt.MqttError, TimeoutError):
        return True


Connect = Callable[[str], Awaitable[aiomqtt.Client]]


async def run(ctx: Ctx) -> Result:
    """`rounds` rounds of cross-site reads and writes with passwords; count what crossed."""
    sites = site_ids(3)
    deployment = render_deployment(sites, auth="password", controller_identities=(CLOUD_USER,))
    users = {u: deployment.passwords[u] for u in (CLOUD_USER, *sites)}
    broker = MosquittoBroker(
        users=users, acl=deployment.text("mosquitto/acl"), workdir=ctx.workdir / "isolation-broker"
    )

    async def connect(user: str) -> aiomqtt.Client:
        return await _client(broker.port, user, users[user])

    refusals = {
        "wrong password refused": lambda: _refused(broker.port, sites[0], users[sites[1]]),
        "anonymous refused": lambda: _refused(broker.port, "", None),
    }
    return await _isolate(ctx, "isolation", "(password + ACL path)", broker, sites, connect, refusals)


async def certificate_isolation(ctx: Ctx) -> Result:
    """The same rounds over mutual TLS: each client's certificate is its identity."""
    sites = site_ids(3)
    pki = LoopbackPki(ctx.workdir / "isolation-pki")
    stranger = LoopbackPki(ctx.workdir / "isolation-other-ca")
    await asyncio.to_thread(pki.generate)
    await asyncio.to_thread(stranger.generate)
    deployment = render_deployment(sites, auth="certificate", controller_identities=(CLOUD_USER,))
    broker = MosquittoBroker(
        acl=deployment.text("mosquitto/acl"),
        tls=BrokerTls(*pki.broker_files()),
        bind_client_id=True,
        workdir=ctx.workdir / "isolation-tls-broker",
    )

    def tls_for(identity: str | None, issuer: LoopbackPki) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(pki.ca_file))  # the broker is checked as usual
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if identity is not None:
            cert, key = issuer.client(identity)
            context.load_cert_chain(str(cert), str(key))
        return context

    async def connect(user: str) -> aiomqtt.Client:
        client = aiomqtt.Client(
            "127.0.0.1", broker.port, identifier=f"chaos-{user}", tls_context=tls_for(user, pki)
        )
        await client.__aenter__()
        return client

    refusals = {
        "no certificate refused": lambda: _tls_refused(broker.port, tls_for(None, pki)),
        "other CA's certificate refused": lambda: _tls_refused(broker.port, tls_for(sites[0], stranger)),
    }
    return await _isolate(
        ctx, "isolation_certs", "(mutual TLS, certificate = identity)", broker, sites, connect, refusals
    )


async def _tls_refused(port: int, context: ssl.SSLContext) -> bool:
    """Whether the broker refuses this TLS client (at the handshake or at CONNECT)."""
    try:
        async with (
            asyncio.timeout(10),
            aiomqtt.Client("127.0.0.1", port, identifier="chaos-stranger", tls_context=context),
        ):
            return False
    except (aiomqtt.MqttError, TimeoutError, ssl.SSLError, OSError):
        return True


async def _isolate(
    ctx: Ctx,
    name: str,
    path: str,
    broker: MosquittoBroker,
    sites: list[str],
    connect: Connect,
    refusals: Mapping[str, Callable[[], Awaitable[bool]]],
) -> Result:
    """Start `broker`, run the rounds with every identity connected by `connect`, then the refusals."""
    rounds = 5 if ctx.short else 100
    t0 = time.monotonic()
    await asyncio.to_thread(broker.start)
    identities = [CLOUD_USER, *sites]
    received: dict[str, list[tuple[str, bytes]]] = {u: [] for u in identities}
    clients: dict[str, aiomqtt.Client] = {}
    tasks: list[asyncio.Task[None]] = []
    attempts = Counter[str]()
    refused: dict[str, bool] = {}
    try:
        for user in identities:
            clients[user] = c = await connect(user)
            await c.subscribe(f"{ROOT}/#", qos=1)  # for a site, the ACL must filter this to its own
            for other in sites if user != CLOUD_USER else []:
                for kind in CLOUD_KINDS:
                    await c.subscribe(site_topic(other, kind), qos=1)
            tasks.append(asyncio.create_task(_collect(c, received[user]), name=f"collect-{user}"))
        for r in range(rounds):
            await _round(clients, sites, r, attempts)
        await asyncio.sleep(2.0)  # let everything in flight arrive
        for label, check in refusals.items():
            refused[label] = await check()
    finally:
        for task in tasks:
            task.cancel()
        for c in clients.values():
            with contextlib.suppress(Exception):
                await c.__aexit__(None, None, None)
        await asyncio.to_thread(broker.close)
    crossed, own_cmds, own_edge = tally(received, sites)
    own_cmds_expected = rounds * len(sites) * len(CLOUD_KINDS)
    own_edge_expected = rounds * len(sites) * len(EDGE_KINDS)
    return Result(
        name,
        f"3 sites x {rounds} rounds of cross-site subscribe and publish {path}",
        {
            "foreign publishes tried": attempts["foreign"],
            "messages crossed": crossed,
            "own cmd/stored received": f"{own_cmds}/{own_cmds_expected}",
            "own edge msgs at cloud": f"{own_edge}/{own_edge_expected}",
            **refused,
        },
        ok=crossed == 0
        and own_cmds == own_cmds_expected
        and own_edge == own_edge_expected
        and all(refused.values()),
        wall_s=time.monotonic() - t0,
    )


async def _round(
    clients: dict[str, aiomqtt.Client], sites: list[str], r: int, attempts: Counter[str]
) -> None:
    """The controller writes to each site; each site writes on every site's topics (its own and others')."""
    for site in sites:
        for kind in CLOUD_KINDS:
            await clients[CLOUD_USER].publish(site_topic(site, kind), f"cloud:{site}:{r}".encode(), qos=1)
    for site in sites:
        for target in sites:
            for kind in (*EDGE_KINDS, *CLOUD_KINDS):
                attempts["own" if target == site else "foreign"] += 1
                with contextlib.suppress(aiomqtt.MqttError):
                    await clients[site].publish(site_topic(target, kind), f"from:{site}:{r}".encode(), qos=1)


def _owner(topic: str) -> str | None:
    return topic.split("/")[3] if topic.startswith(f"{ROOT}/site/") else None


def tally(received: dict[str, list[tuple[str, bytes]]], sites: list[str]) -> tuple[int, int, int]:
    """(messages crossed, own cmd/stored received by the sites, own edge messages at the cloud).

    Crossed: a site received a message on another site's topic, or the cloud received a
    message a site published on another site's topic (payloads say `from:<site>:<round>`).
    """
    crossed = own_cmds = own_edge = 0
    for site in sites:
        for topic, payload in received[site]:
            if _owner(topic) != site:
                crossed += 1
            elif payload.startswith(b"cloud:"):
                own_cmds += 1
    for topic, payload in received[CLOUD_USER]:
        if not payload.startswith(b"from:"):
            continue
        sender = payload.split(b":")[1].decode()
        if sender != _owner(topic):
            crossed += 1
        elif topic.rsplit("/", 1)[1] in EDGE_KINDS:
            own_edge += 1
    return crossed, own_cmds, own_edge
