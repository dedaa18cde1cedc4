"""Certificates as identities: site a's certificate reaches none of site b's topics, and no id can be taken over.

Every isolation claim has a subscriber that would see a crossed message: the controller
identity, which may read everything, watches `site/b/#`; a barrier message (one the
watcher may receive, sent after the forged ones) ends each wait, so no test sleeps on
wall time and a leak could not arrive after the check.
"""

from __future__ import annotations

import pytest

from gridflex.ops.broker import MosquittoBroker
from protocols.topics import site_topic
from tests.integration.tls.conftest import CLOUD_ID, Peer, Pki, client_context

pytestmark = pytest.mark.integration

SITE_KINDS = ("state", "telemetry", "flex", "ack", "event")  # a site publishes these
CLOUD_KINDS = ("cmd", "stored")  # the controller publishes these, the site reads them
ALL_KINDS = SITE_KINDS + CLOUD_KINDS


def _peer(broker: MosquittoBroker, pki: Pki, name: str, client_id: str | None = None) -> Peer:
    return Peer(broker.port, client_context(pki, name), client_id=client_id or f"t-{name}")


def test_site_a_certificate_cannot_publish_on_site_b_topics(tls_broker: MosquittoBroker, pki: Pki) -> None:
    """All seven topic kinds, plain and retained: the controller watching b/# sees none of a's forgeries."""
    cloud, a = _peer(tls_broker, pki, CLOUD_ID), _peer(tls_broker, pki, "a")
    try:
        cloud.subscribe("gridflex/v1/site/b/#")
        for kind in ALL_KINDS:
            for retain in (False, True):
                a.publish(site_topic("b", kind), f"forged {kind} {retain}".encode(), retain=retain)
        cloud.publish(site_topic("b", "cmd"), b"barrier")
        seen = cloud.until(b"barrier")
        assert seen == [(site_topic("b", "cmd"), b"barrier", False)], seen
        # Nothing forged was retained either: a fresh subscription gets no retained message.
        # (A new connection of the same identity replaces the old one: ids are bound to it.)
        cloud.close()
        cloud = _peer(tls_broker, pki, CLOUD_ID)
        cloud.subscribe("gridflex/v1/site/b/#")
        cloud.publish(site_topic("b", "event"), b"barrier-2")
        assert cloud.until(b"barrier-2") == [(site_topic("b", "event"), b"barrier-2", False)]
    finally:
        a.close()
        cloud.close()


def test_site_a_certificate_cannot_read_site_b_topics(tls_broker: MosquittoBroker, pki: Pki) -> None:
    """All seven kinds, plain and retained, published by their rightful senders; the watcher proves they flowed."""
    cloud, a, b = (_peer(tls_broker, pki, n) for n in (CLOUD_ID, "a", "b"))
    try:
        cloud.subscribe("gridflex/v1/site/b/#")
        for kind in ALL_KINDS:
            a.subscribe(site_topic("b", kind))
        a.subscribe("gridflex/v1/site/+/#")
        sent: list[tuple[str, bytes, bool]] = []
        for kind in ALL_KINDS:
            sender = b if kind in SITE_KINDS else cloud
            for retain in (False, True):
                payload = f"for b: {kind} {retain}".encode()
                sender.publish(site_topic("b", kind), payload, retain=retain)
                sent.append((site_topic("b", kind), payload, False))  # live delivery: retain flag cleared
        cloud.publish(site_topic("a", "cmd"), b"barrier")
        watched = cloud.until(b"for b: stored True")
        assert sorted(watched) == sorted(sent), "the watcher must see every message a must not"
        assert a.until(b"barrier") == [(site_topic("a", "cmd"), b"barrier", False)]
        # Retained messages on b's topics exist now; a fresh subscription of a's gets none of them.
        a.subscribe("gridflex/v1/site/b/#")
        cloud.publish(site_topic("a", "cmd"), b"barrier-2")
        assert a.until(b"barrier-2") == [(site_topic("a", "cmd"), b"barrier-2", False)]
    finally:
        for peer in (a, b, cloud):
            peer.close()


def test_a_certificate_cannot_take_over_the_controllers_client_id(
    tls_broker: MosquittoBroker, pki: Pki
) -> None:
    """Site a connects asking for the controller's id: it gets its own identity as id; the controller stays."""
    cloud = _peer(tls_broker, pki, CLOUD_ID, client_id=CLOUD_ID)
    disconnects: list[object] = []
    cloud.client.on_disconnect = lambda *args: disconnects.append(args[3])
    try:
        cloud.subscribe("gridflex/v1/site/+/event")
        intruder = _peer(tls_broker, pki, "a", client_id=CLOUD_ID)
        try:
            intruder.publish(site_topic("a", "event"), b"after the attempt")
            assert cloud.until(b"after the attempt") == [
                (site_topic("a", "event"), b"after the attempt", False)
            ]
            assert disconnects == [] and cloud.client.is_connected()
        finally:
            intruder.close()
    finally:
        cloud.close()
