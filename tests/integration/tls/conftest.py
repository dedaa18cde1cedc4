"""A throwaway PKI (made once per session: EC P-256, ~50 ms) and a Mosquitto with a mutual-TLS listener.

The PKI holds what the refusal tests need: a second CA, an expired client certificate,
and a broker certificate for a name the tests never dial.
"""

from __future__ import annotations

import queue
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gridflex.ops.broker import BrokerTls, MosquittoBroker, site_acl
from gridflex.ops.certs import CertificateAuthority, IssuedCert, write_pem
from protocols.mqtt import MqttConfig, tls_context_for

CLOUD_ID = "gridflex-cloud-all"


@dataclass(frozen=True)
class Pki:
    """Files of the test PKI: `ca` signs everything but `foreign_*`; `client(name)` -> (cert, key)."""

    root: Path

    @property
    def ca(self) -> Path:
        return self.root / "ca.crt"

    def client(self, name: str) -> tuple[Path, Path]:
        return self.root / f"{name}.crt", self.root / f"{name}.key"

    def broker_tls(self, server: str = "broker") -> BrokerTls:
        cert, key = self.client(server)
        return BrokerTls(ca_file=self.ca, cert_file=cert, key_file=key)


def _write(root: Path, name: str, issued: IssuedCert) -> None:
    write_pem(root / f"{name}.crt", issued.cert_pem, private=False)
    write_pem(root / f"{name}.key", issued.key_pem, private=True)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """CA, broker certificates (good host / wrong host), site and controller certificates, bad ones."""
    root = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority.generate("test CA")
    foreign = CertificateAuthority.generate("another CA")
    write_pem(root / "ca.crt", ca.cert_pem, private=False)
    _write(root, "broker", ca.issue_server(["localhost", "127.0.0.1"]))
    _write(root, "broker-elsewhere", ca.issue_server(["broker.example"]))
    for name in ("a", "b", CLOUD_ID):
        _write(root, name, ca.issue_client(name))
    _write(root, "foreign-a", foreign.issue_client("a"))
    past = datetime.now(UTC) - timedelta(days=30)
    _write(
        root,
        "expired-a",
        ca.issue_client("a", not_valid_before=past, not_valid_after=past + timedelta(days=1)),
    )
    return Pki(root)


@pytest.fixture
def tls_broker(pki: Pki) -> Iterator[MosquittoBroker]:
    """Mosquitto on loopback: TLS only, client certificate required and taken as identity and client id."""
    broker = MosquittoBroker(tls=pki.broker_tls(), acl=site_acl(cloud_users=[CLOUD_ID]), bind_client_id=True)
    broker.start()
    try:
        yield broker
    finally:
        broker.close()


def client_context(pki: Pki, name: str | None, *, host: str = "127.0.0.1") -> ssl.SSLContext:
    """The context our MQTT session would use for identity `name` (None = no client certificate)."""
    cert, key = pki.client(name) if name else (None, None)
    return tls_context_for(MqttConfig(host=host, tls=True, ca_file=pki.ca, cert_file=cert, key_file=key))


class Peer:
    """A paho client on its own network thread, collecting what it receives (topic, payload, retain)."""

    def __init__(
        self,
        port: int,
        ctx: ssl.SSLContext,
        *,
        client_id: str,
        username: str | None = None,
        password: str | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.got: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
        self.connack: queue.Queue[str] = queue.Queue()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.tls_set_context(ctx)
        self.client.on_message = lambda _c, _u, m: self.got.put((m.topic, bytes(m.payload), bool(m.retain)))
        self.client.on_connect = lambda _c, _u, _f, rc, _p: self.connack.put(str(rc))
        self.client.connect(host, port)
        self.client.loop_start()
        assert self.connack.get(timeout=10) == "Success"

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_a: done.set()
        self.client.subscribe(topic, qos=1)
        assert done.wait(10), f"no SUBACK for {topic}"

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(10)
        assert info.is_published(), f"no PUBACK for {topic}"

    def until(self, payload: bytes) -> list[tuple[str, bytes, bool]]:
        """Everything received up to and including the message carrying `payload` (a barrier)."""
        out: list[tuple[str, bytes, bool]] = []
        while True:
            item = self.got.get(timeout=10)
            out.append(item)
            if item[1] == payload:
                return out

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _connect_packet(client_id: str) -> bytes:
    """An MQTT 3.1.1 CONNECT (clean session, 60 s keepalive): enough to ask for a CONNACK."""
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid
    return bytes([0x10, len(body)]) + body


def probe(port: int, ctx: ssl.SSLContext, host: str) -> str:
    """'connected' if the broker answers CONNECT with a CONNACK over TLS, else what the client saw.

    A raw socket, not a client library: a library waits out its connect timeout when the
    broker closes the connection, while the socket sees the TLS alert at once. (TLS 1.3
    checks the client certificate after the handshake, hence the CONNECT round trip.)
    """
    try:
        with (
            socket.create_connection((host, port), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname=host) as tls,
        ):
            tls.sendall(_connect_packet("probe"))
            reply = tls.recv(4)
    except (ssl.SSLError, OSError) as exc:
        return f"refused: {exc}"
    if reply[:1] == b"\x20" and reply[3:4] == b"\x00":
        return "connected"
    return f"refused: reply {reply!r}"
