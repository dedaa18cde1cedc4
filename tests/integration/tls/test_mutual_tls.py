"""A real Mosquitto TLS listener with client certificates: who gets in, and who is refused.

Each refusal is paired with the good case on the same broker, so a test cannot pass
because nothing connects at all.
"""

from __future__ import annotations

import asyncio
import ssl

import aiomqtt
import pytest

from gridflex.ops.broker import MosquittoBroker, site_acl
from protocols.mqtt import MqttConfig, MqttSession
from protocols.topics import site_topic
from tests.integration.tls.conftest import CLOUD_ID, Pki, client_context, probe

pytestmark = pytest.mark.integration


async def _try_connect(port: int, ctx: ssl.SSLContext, *, host: str = "127.0.0.1") -> str:
    return await asyncio.to_thread(probe, port, ctx, host)


async def test_good_client_certificate_connects(tls_broker: MosquittoBroker, pki: Pki) -> None:
    assert await _try_connect(tls_broker.port, client_context(pki, "a")) == "connected"


@pytest.mark.parametrize("tls_version", ["1.2", "1.3"])
@pytest.mark.parametrize(
    ("client", "alert"),
    [(None, "handshake failure"), ("foreign-a", "unknown ca"), ("expired-a", "certificate expired")],
    ids=["no-certificate", "certificate-from-another-ca", "expired-certificate"],
)
async def test_client_without_a_valid_certificate_is_refused(
    tls_broker: MosquittoBroker, pki: Pki, client: str | None, alert: str, tls_version: str
) -> None:
    """Refused, and the good certificate still connects right after.

    TLS 1.2 checks the client certificate inside the handshake, so the broker's alert (the
    reason) always reaches us; TLS 1.3 checks it after, and the alert can be lost to the
    connection's close, so there only the refusal is asserted.
    """
    ctx = client_context(pki, client)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2 if tls_version == "1.2" else ssl.TLSVersion.TLSv1_3
    outcome = await _try_connect(tls_broker.port, ctx)
    assert outcome.startswith("refused"), outcome
    if tls_version == "1.2":
        assert alert in outcome, outcome
    assert await _try_connect(tls_broker.port, client_context(pki, "a")) == "connected"


async def test_broker_certificate_for_another_host_is_refused_by_the_client(pki: Pki) -> None:
    """Broker certificate names `broker.example`; we dial 127.0.0.1 with host name checks on."""
    with MosquittoBroker(
        tls=pki.broker_tls("broker-elsewhere"), acl=site_acl(), bind_client_id=True
    ) as broker:
        outcome = await _try_connect(broker.port, client_context(pki, "a"))
        assert outcome.startswith("refused") and "mismatch" in outcome, outcome
        # The same certificate is accepted when host name checks are off: the name is the only fault.
        lax = client_context(pki, "a")
        lax.check_hostname = False
        assert await _try_connect(broker.port, lax) == "connected"


async def test_session_over_mutual_tls_publishes_and_receives(tls_broker: MosquittoBroker, pki: Pki) -> None:
    """Our `MqttSession` with ca/cert/key: the controller's identity receives what site a publishes."""
    cert, key = pki.client(CLOUD_ID)
    cloud = MqttSession(
        MqttConfig(
            port=tls_broker.port, client_id=CLOUD_ID, tls=True, ca_file=pki.ca, cert_file=cert, key_file=key
        ),
        subscriptions=[("gridflex/v1/site/+/event", 1)],
    )
    got: asyncio.Queue[aiomqtt.Message] = asyncio.Queue()

    async def handler(message: aiomqtt.Message) -> None:
        await got.put(message)

    a_cert, a_key = pki.client("a")
    site = MqttSession(
        MqttConfig(
            port=tls_broker.port,
            client_id="gridflex-edge-a",
            tls=True,
            ca_file=pki.ca,
            cert_file=a_cert,
            key_file=a_key,
        )
    )
    tasks = [asyncio.create_task(cloud.run(handler)), asyncio.create_task(site.run())]
    try:
        await cloud.wait_connected(10)
        await site.wait_connected(10)
        await site.publish(site_topic("a", "event"), b"hello over mTLS")
        message = await asyncio.wait_for(got.get(), 10)
        assert str(message.topic) == site_topic("a", "event") and message.payload == b"hello over mTLS"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
