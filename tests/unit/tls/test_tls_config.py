"""TLS settings reach the MQTT session: the agent's cert/key, the controller's per-worker identity."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cloud_controller.config import load_cloud_config
from edge_agent.config import load_config
from edge_agent.session import make_session
from gridflex.ops.certs import CertificateAuthority, write_pem
from protocols.clock import SimClock
from protocols.errors import ConfigError
from protocols.mqtt import MqttConfig, MqttSession


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tlsfiles")
    ca = CertificateAuthority.generate()
    write_pem(root / "ca.crt", ca.cert_pem, private=False)
    for name in ("a", "gridflex-cloud-dispatch", "gridflex-cloud-a-ingest"):
        issued = ca.issue_client(name)
        write_pem(root / f"{name}.crt", issued.cert_pem, private=False)
        write_pem(root / f"{name}.key", issued.key_pem, private=True)
    return root


def test_agent_with_a_client_certificate_builds_a_mutual_tls_session(
    files: Path, sim_clock: SimClock
) -> None:
    site = files / "site.yaml"
    tls = {"ca_file": "ca.crt", "cert_file": "a.crt", "key_file": "a.key"}
    site.write_text(yaml.safe_dump({"site": "a", "broker": {"port": 8883, "tls": tls}}))
    cfg = load_config(site)
    topics = {k: f"gridflex/v1/site/a/{k}" for k in ("cmd", "stored", "state")}

    async def noop(_s: MqttSession) -> None:
        return None

    session = make_session(cfg, sim_clock, topics, noop)
    assert session.config.tls and session.config.cert_file == files / "a.crt"
    assert session.config.key_file == files / "a.key" and session.config.ca_file == files / "ca.crt"


def test_agent_refuses_a_certificate_with_the_wrong_key(files: Path, tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    tls = {
        "ca_file": str(files / "ca.crt"),
        "cert_file": str(files / "a.crt"),
        "key_file": str(files / "gridflex-cloud-dispatch.key"),
    }
    site.write_text(yaml.safe_dump({"site": "a", "broker": {"tls": tls}}))
    with pytest.raises(ConfigError) as info:
        load_config(site)
    assert info.value.key == "broker.tls.cert_file" and "pair" in info.value.reason


def test_mqtt_config_needs_tls_for_files_and_a_key_with_a_certificate(files: Path) -> None:
    with pytest.raises(ValueError, match="go together"):
        MqttConfig(tls=True, cert_file=files / "a.crt")
    with pytest.raises(ValueError, match="need tls"):
        MqttConfig(ca_file=files / "ca.crt")


@pytest.mark.parametrize(
    ("worker", "role", "identity"),
    [(None, "dispatch", "gridflex-cloud-dispatch"), ("a", "ingest", "gridflex-cloud-a-ingest")],
    ids=["dispatcher", "ingest-worker-a"],
)
def test_each_controller_worker_logs_in_as_its_own_identity(
    files: Path, worker: str | None, role: str, identity: str
) -> None:
    """One cloud.yaml for every worker: `{identity}` picks each worker's own certificate."""
    cloud = files / "cloud.yaml"
    tls = {"ca_file": "ca.crt", "cert_file": "{identity}.crt", "key_file": "{identity}.key"}
    cloud.write_text(yaml.safe_dump({"broker": {"port": 8883, "tls": tls}}))
    broker = load_cloud_config(cloud).broker
    if worker is not None:  # what `gridflex cloud --worker a` does
        broker = broker.model_copy(update={"client_id": f"{broker.client_id}-{worker}"})
    broker = broker.for_identity(role)
    assert broker.identity(role) == identity
    assert broker.tls is not None and broker.tls.cert_file == files / f"{identity}.crt"
    assert broker.tls.key_file == files / f"{identity}.key"
