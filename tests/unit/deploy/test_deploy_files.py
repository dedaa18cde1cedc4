"""deploy/: the compose file, Dockerfile and k8s manifests refer only to things that exist.

Docker itself is not on the CI machine, so these tests check what a `docker compose up`
would trip over first: unparsable YAML, a missing build context or copied file, a
service command that is not a real `gridflex` subcommand or passes an unknown option,
and broker credentials that Mosquitto refuses.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

from gridflex.cli import app
from gridflex.ops.deploy_config import CONTROLLER_IDENTITIES, render_deployment, site_ids, write_deployment

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
OUR_IMAGE = "gridflex:dev"


def _compose() -> dict[str, Any]:
    doc = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert isinstance(doc, dict)
    return doc


def _is_group(command: Any) -> bool:
    """Typer ships its own click (`typer._click`), so test for the group interface, not the class."""
    return hasattr(command, "commands")


def _resolve_command(argv: list[str]) -> tuple[Any, list[str]]:
    """Walk `gridflex <group> <cmd> ...` down to the click command and its remaining args."""
    command: Any = typer.main.get_command(app)
    rest = list(argv)
    while _is_group(command) and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        sub = command.commands.get(name)
        assert sub is not None, f"`gridflex {' '.join(argv)}`: no subcommand {name!r}"
        command = sub
    return command, rest


def _assert_real_invocation(argv: list[str]) -> None:
    command, rest = _resolve_command(argv)
    # A group is a real invocation only when it runs without a subcommand (`gridflex cloud --config`).
    if _is_group(command):
        assert getattr(command, "invoke_without_command", False), (
            f"`gridflex {' '.join(argv)}` stops at a group"
        )
    known = {opt for param in command.params for opt in param.opts + param.secondary_opts}
    for arg in rest:
        if arg.startswith("--"):
            assert arg.split("=")[0] in known, f"`gridflex {' '.join(argv)}`: unknown option {arg}"


def _our_services(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in doc["services"].items() if svc.get("image") == OUR_IMAGE}


def test_compose_parses_and_has_the_test_bed_services() -> None:
    services = _compose()["services"]
    assert set(services) == {"init", "mosquitto", "postgres", "testbed", "dispatcher", "ingest-a", "ingest-b"}
    assert services["mosquitto"]["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert "name" not in _compose()  # compose v1.29 rejects a top-level name
    for role in ("dispatcher", "ingest-a", "ingest-b"):
        assert services[role]["depends_on"]["postgres"]["condition"] == "service_healthy", role
    # every image is built here from one base (no registry pull needed)
    for name, svc in services.items():
        assert svc["build"]["args"]["BASE"] == "${GRIDFLEX_BASE:-python:3.11-slim-bookworm}", name


def test_host_override_puts_every_service_on_the_loopback_with_its_own_ports() -> None:
    """docker-compose.host.yml (a daemon without a bridge): host network, 127.0.0.1, ports that agree."""
    from cloud_controller.config import load_cloud_config

    base = _compose()["services"]
    host = yaml.safe_load((DEPLOY / "docker-compose.host.yml").read_text())["services"]
    assert set(host) == set(base)
    for name, svc in host.items():
        assert svc["network_mode"] == "host" and svc["build"] == {"network": "host"}, name
    cfg = load_cloud_config(DEPLOY / "cloud.host.yaml")
    init = host["init"]["command"]
    assert init[init.index("--listen") + 1] == f"127.0.0.1:{cfg.broker.port}"
    bed = host["testbed"]["command"]
    assert bed[bed.index("--broker-port") + 1] == str(cfg.broker.port)
    assert bed[bed.index("--broker-host") + 1] == "localhost" and cfg.broker.host == "localhost"
    assert cfg.api.host == "127.0.0.1" and cfg.store.dsn is not None and "host=127.0.0.1" in cfg.store.dsn
    assert f"port={host['postgres']['environment']['GRIDFLEX_PG_PORT']}" in cfg.store.dsn
    assert host["postgres"]["environment"]["GRIDFLEX_PG_LISTEN"] == "127.0.0.1"
    for name in ("dispatcher", "ingest-a", "ingest-b"):
        argv = host[name]["command"]
        assert argv[argv.index("--config") + 1] == "/etc/gridflex/cloud.host.yaml", name
        _assert_real_invocation([str(a) for a in argv])
    conf = render_deployment(site_ids(1), listen=("127.0.0.1", cfg.broker.port)).text(
        "mosquitto/mosquitto.conf"
    )
    assert f"listener {cfg.broker.port} 127.0.0.1" in conf.splitlines()


def test_every_build_context_and_copied_file_exists() -> None:
    for svc in _compose()["services"].values():
        build = svc["build"]
        context = (DEPLOY / build["context"]).resolve()
        dockerfile = context / build["dockerfile"]
        assert dockerfile.is_file(), dockerfile
        for line in dockerfile.read_text().splitlines():
            match = re.match(r"^COPY\s+(?!--from)(.+)\s+(\S+)$", line.strip())
            if match:
                for src in match.group(1).split():
                    assert (context / src).exists(), f"{dockerfile}: COPY source {src} is missing"


def test_every_service_command_is_a_real_gridflex_subcommand() -> None:
    services = _our_services(_compose())
    assert services, "no service uses the gridflex image"
    for name, svc in services.items():
        argv = [str(a) for a in svc["command"]]
        argv = [re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", a) for a in argv]
        try:
            _assert_real_invocation(argv)
        except AssertionError as exc:
            raise AssertionError(f"service {name}: {exc}") from None


def test_k8s_manifests_parse_and_run_real_subcommands() -> None:
    manifests = sorted((DEPLOY / "k8s").glob("*.yaml"))
    assert manifests
    containers = 0
    for path in manifests:
        for doc in yaml.safe_load_all(path.read_text()):
            assert isinstance(doc, dict) and "kind" in doc and "apiVersion" in doc, path
            if doc["kind"] not in ("Deployment", "StatefulSet"):
                continue
            for container in doc["spec"]["template"]["spec"]["containers"]:
                # the gridflex image's entrypoint is `gridflex` unless `command` replaces it (dask)
                if container["image"] == OUR_IMAGE and "command" not in container:
                    _assert_real_invocation([str(a) for a in container["args"]])
                    containers += 1
    assert containers >= 2, "expected the dispatcher and the ingest workers"


def test_k8s_files_apply_in_name_order_each_object_after_what_it_refers_to() -> None:
    """`kubectl apply -f deploy/k8s/` goes file by file in name order: namespace, then config, then pods."""
    seen: set[tuple[str, str]] = set()  # (kind, name) applied so far
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            meta = doc["metadata"]
            if doc["kind"] != "Namespace":
                assert ("Namespace", meta["namespace"]) in seen, f"{path.name}: namespace not created yet"
            if doc["kind"] == "Deployment":
                pod = doc["spec"]["template"]["spec"]
                for vol in pod.get("volumes", []):
                    if "configMap" in vol:
                        assert ("ConfigMap", vol["configMap"]["name"]) in seen, f"{path.name}: {vol}"
            seen.add((doc["kind"], meta["name"]))
    assert ("Namespace", "gridflex") in seen and ("ConfigMap", "gridflex-cloud") in seen


def test_systemd_unit_runs_a_real_subcommand() -> None:
    unit = (DEPLOY / "systemd" / "gridflex-edge.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    argv = exec_start.removeprefix("ExecStart=").split()
    assert argv[0].endswith("gridflex")
    _assert_real_invocation(argv[1:])


def test_rendered_deployment_is_mutual_tls_with_ids_bound_and_no_secret_in_the_conf() -> None:
    deployment = render_deployment(site_ids(3))
    conf = deployment.text("mosquitto/mosquitto.conf")
    for line in (
        "listener 8883 0.0.0.0",
        "require_certificate true",
        "use_identity_as_username true",
        "use_username_as_clientid true",
        "allow_anonymous false",
        "set_tcp_nodelay true",
    ):
        assert line in conf.splitlines(), line
    assert "password_file" not in conf and "listener 1883" not in conf  # no plaintext, no passwords
    for site in ("b001", "b002", "b003", *CONTROLLER_IDENTITIES):
        cert = x509.load_pem_x509_certificate(deployment.files[f"secrets/{site}.crt"])
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == site
        assert f"secrets/{site}.key" in deployment.private
    acl = deployment.text("mosquitto/acl")
    assert all(f"user {ident}" in acl for ident in CONTROLLER_IDENTITIES)
    # signing on by default: one key per site, under a key id, the controller holding all
    assert set(deployment.signing_keys) == {"b001", "b002", "b003"}
    for site, (kid, key_hex) in deployment.signing_keys.items():
        assert deployment.text(f"secrets/signing/{site}.{kid}.key").strip() == key_hex
        assert len(bytes.fromhex(key_hex)) == 32
    assert len({k for _, k in deployment.signing_keys.values()}) == 3
    with pytest.raises(ValueError, match="reserved"):
        render_deployment(["cloud"])
    with pytest.raises(ValueError, match="reserved"):
        render_deployment(["gridflex-cloud-all"])
    with pytest.raises(ValueError):
        render_deployment(["Bad Site"])


def test_password_mode_keeps_tls_and_binds_ids_to_usernames() -> None:
    deployment = render_deployment(site_ids(2), auth="password")
    conf = deployment.text("mosquitto/mosquitto.conf").splitlines()
    assert "use_username_as_clientid true" in conf and "require_certificate true" not in conf
    assert any(line.startswith("certfile ") for line in conf)  # still TLS, server certificate only
    for user, password in deployment.passwords.items():
        assert password not in "\n".join(conf)
        assert len(password) >= 24, user
    passwd = deployment.text("mosquitto/passwd")
    assert all(f"{ident}:$7$" in passwd for ident in ("b001", "b002", *CONTROLLER_IDENTITIES))


def test_rerun_keeps_ca_certificates_keys_and_passwords_unless_rotated(tmp_path: Path) -> None:
    first = write_deployment(tmp_path, site_ids(2), auth="password")
    again = write_deployment(tmp_path, site_ids(2), auth="password")
    assert again.passwords == first.passwords
    assert again.signing_keys == first.signing_keys
    for rel in ("ca/ca.crt", "mosquitto/certs/broker.crt", "secrets/ca.crt"):
        assert again.files[rel] == first.files[rel], rel
    rotated = write_deployment(tmp_path, site_ids(2), rotate=True, auth="password")
    assert rotated.passwords["b001"] != first.passwords["b001"]
    assert rotated.files["ca/ca.crt"] != first.files["ca/ca.crt"]
    for rel in ("secrets/b001.pw", "ca/ca.key", "mosquitto/certs/broker.key", "mosquitto/passwd"):
        assert oct((tmp_path / rel).stat().st_mode & 0o777) == "0o600", rel
    certs = write_deployment(tmp_path / "tls", site_ids(2))
    certs_again = write_deployment(tmp_path / "tls", site_ids(2))
    assert certs_again.files["secrets/b001.crt"] == certs.files["secrets/b001.crt"]
    assert oct((tmp_path / "tls" / "secrets" / "b001.key").stat().st_mode & 0o777) == "0o600"


def test_compose_and_k8s_controller_configs_run_mutual_tls_and_signing(tmp_path: Path) -> None:
    """deploy/cloud.yaml and the k8s ConfigMap: TLS to 8883 with a certificate per worker, signing keys set."""
    from cloud_controller.config import load_cloud_config

    configmap = next(
        doc
        for doc in yaml.safe_load_all((DEPLOY / "k8s" / "10-configmap.yaml").read_text())
        if doc["kind"] == "ConfigMap"
    )
    k8s = tmp_path / "cloud.yaml"
    k8s.write_text(configmap["data"]["cloud.yaml"])
    for path in (DEPLOY / "cloud.yaml", k8s):
        cfg = load_cloud_config(path)
        assert cfg.broker.port == 8883 and cfg.signing_keys_dir is not None, path
        broker = cfg.broker.for_identity("dispatch")
        assert broker.tls is not None and broker.tls.cert_file is not None, path
        assert broker.tls.cert_file.name == "gridflex-cloud-dispatch.crt", path
        assert broker.tls.cert_file.name.removesuffix(".crt") in CONTROLLER_IDENTITIES
    services = _compose()["services"]
    published = yaml.safe_load((DEPLOY / "docker-compose.override.yml").read_text())["services"]
    assert published["mosquitto"]["ports"] == ["127.0.0.1:8883:8883"]  # the bridge network's override
    assert published["dispatcher"]["ports"] == ["127.0.0.1:8080:8080"]
    assert all("ports" not in svc for svc in services.values())  # compose v1 refuses them on a host network
    argv = services["testbed"]["command"]
    assert argv[argv.index("--broker-port") + 1] == "8883"
    assert "listener 8883 0.0.0.0" in render_deployment(site_ids(1)).text("mosquitto/mosquitto.conf")


def test_testbed_agents_take_certificate_and_signing_key_from_the_generated_secrets(tmp_path: Path) -> None:
    """`gridflex testbed --secrets DIR` (compose): each agent gets its site's certificate and key id."""
    from gridflex.loop.agents import FleetOptions, _override

    deployment = write_deployment(tmp_path, site_ids(2))
    doc = _override(
        {"site": "b002", "broker": {"host": "mosquitto", "port": 8883}},
        "b002",
        FleetOptions(secrets_dir=tmp_path / "secrets"),
    )
    assert doc["broker"]["tls"] == {
        "ca_file": str(tmp_path / "secrets" / "ca.crt"),
        "cert_file": str(tmp_path / "secrets" / "b002.crt"),
        "key_file": str(tmp_path / "secrets" / "b002.key"),
    }
    kid, _key = deployment.signing_keys["b002"]
    assert doc["signing"] == {"keys": {kid: str(tmp_path / "secrets" / "signing" / f"b002.{kid}.key")}}
    assert "username" not in doc["broker"]  # the certificate is the identity
