"""The broker config, certificates and credentials `gridflex deploy-config` generates work in a real Mosquitto.

Both auth modes run the generated mosquitto.conf and ACL (only paths and the listener
moved to loopback). Every isolation claim has a subscriber that would see a crossed
message: a controller identity, which may read everything, watches `site/b002/#` while
site b001 forges all seven topic kinds, plain and retained; b001 subscribes to all of
b002's topics while their rightful senders publish. A barrier message each watcher may
receive ends every wait, so nothing depends on sleeping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gridflex.ops.broker import MosquittoBroker, free_port
from gridflex.ops.deploy_config import Auth, Deployment, mosquitto_conf, site_ids, write_deployment
from protocols.mqtt import MqttConfig, tls_context_for
from protocols.topics import site_topic
from tests.integration.tls.conftest import Peer, probe

pytestmark = pytest.mark.integration

SITE_KINDS = ("state", "telemetry", "flex", "ack", "event")
CLOUD_KINDS = ("cmd", "stored")
CLOUD = "gridflex-cloud-all"


def _start(tmp_path: Path, auth: Auth) -> tuple[MosquittoBroker, Deployment, Path]:
    out = tmp_path / "config"
    deployment = write_deployment(out, site_ids(2), auth=auth)
    port = free_port()
    conf = mosquitto_conf(
        auth=auth, port=port, host="127.0.0.1", config_dir=str(out / "mosquitto"), data_dir=f"{tmp_path}/"
    )
    if os.geteuid() == 0:
        conf += "user root\n"
    return MosquittoBroker(port=port, workdir=tmp_path / "run", config_text=conf), deployment, out


def _peer(
    port: int, out: Path, deployment: Deployment, auth: Auth, ident: str, *, password: str | None = None
) -> Peer:
    secrets_dir = out / "secrets"
    cert = key = None
    if auth == "certificate":
        cert, key = secrets_dir / f"{ident}.crt", secrets_dir / f"{ident}.key"
    ctx = tls_context_for(
        MqttConfig(host="localhost", tls=True, ca_file=secrets_dir / "ca.crt", cert_file=cert, key_file=key)
    )
    user = None if auth == "certificate" else ident
    secret = password if password is not None else deployment.passwords.get(ident)
    return Peer(port, ctx, client_id=f"t-{ident}", username=user, password=secret, host="localhost")


@pytest.mark.parametrize("auth", ["certificate", "password"])
def test_generated_config_isolates_sites_on_every_topic_kind(tmp_path: Path, auth: Auth) -> None:
    broker, deployment, out = _start(tmp_path, auth)
    with broker:
        port = broker.port
        cloud = _peer(port, out, deployment, auth, CLOUD)
        b1 = _peer(port, out, deployment, auth, "b001")
        b2 = _peer(port, out, deployment, auth, "b002")
        try:
            cloud.subscribe("gridflex/v1/site/b002/#")
            b1.subscribe("gridflex/v1/site/+/#")
            # b001 forges every kind on b002's topics: the controller sees none of them.
            for kind in SITE_KINDS + CLOUD_KINDS:
                for retain in (False, True):
                    b1.publish(site_topic("b002", kind), f"forged {kind} {retain}".encode(), retain=retain)
            cloud.publish(site_topic("b002", "cmd"), b"barrier-1")
            assert cloud.until(b"barrier-1") == [(site_topic("b002", "cmd"), b"barrier-1", False)]
            # Their rightful senders publish every kind: the controller sees all, b001 none.
            sent = []
            for kind in SITE_KINDS + CLOUD_KINDS:
                sender = b2 if kind in SITE_KINDS else cloud
                for retain in (False, True):
                    payload = f"b002 {kind} {retain}".encode()
                    sender.publish(site_topic("b002", kind), payload, retain=retain)
                    sent.append((site_topic("b002", kind), payload, False))
            cloud.publish(site_topic("b001", "cmd"), b"barrier-2")
            assert sorted(cloud.until(b"b002 stored True")) == sorted(sent)
            assert b1.until(b"barrier-2") == [(site_topic("b001", "cmd"), b"barrier-2", False)]
            # A fresh subscription of b001's gets none of b002's retained messages either.
            b1.subscribe("gridflex/v1/site/b002/#")
            cloud.publish(site_topic("b001", "stored"), b"barrier-3")
            assert b1.until(b"barrier-3") == [(site_topic("b001", "stored"), b"barrier-3", False)]
        finally:
            for peer in (b1, b2, cloud):
                peer.close()


def test_generated_password_config_refuses_another_sites_password(tmp_path: Path) -> None:
    broker, deployment, out = _start(tmp_path, "password")
    with broker:
        _peer(broker.port, out, deployment, "password", "b001").close()
        with pytest.raises(AssertionError):
            _peer(broker.port, out, deployment, "password", "b001", password=deployment.passwords["b002"])


def test_generated_certificate_config_refuses_a_client_without_a_certificate(tmp_path: Path) -> None:
    broker, deployment, out = _start(tmp_path, "certificate")
    with broker:
        _peer(broker.port, out, deployment, "certificate", "b001").close()
        ctx = tls_context_for(MqttConfig(host="localhost", tls=True, ca_file=out / "secrets" / "ca.crt"))
        outcome = probe(broker.port, ctx, "localhost")
        assert outcome.startswith("refused"), outcome
