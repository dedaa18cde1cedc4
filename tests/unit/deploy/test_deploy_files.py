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

from gridflex.cli import app
from gridflex.ops.deploy_config import render_deployment, site_ids, write_deployment

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
    assert {"init", "mosquitto", "influxdb", "controller", "testbed"} <= set(services)
    assert services["mosquitto"]["depends_on"]["init"]["condition"] == "service_completed_successfully"


def test_every_build_context_and_copied_file_exists() -> None:
    for svc in _our_services(_compose()).values():
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
            if doc["kind"] != "Deployment":
                continue
            for container in doc["spec"]["template"]["spec"]["containers"]:
                if container["image"].startswith("gridflex"):
                    _assert_real_invocation([str(a) for a in container["args"]])
                    containers += 1
    assert containers >= 1, "expected the controller"


def test_systemd_unit_runs_a_real_subcommand() -> None:
    unit = (DEPLOY / "systemd" / "gridflex-edge.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    argv = exec_start.removeprefix("ExecStart=").split()
    assert argv[0].endswith("gridflex")
    _assert_real_invocation(argv[1:])


def test_rendered_deployment_isolates_sites_and_keeps_secrets_out_of_the_conf() -> None:
    deployment = render_deployment(site_ids(3))
    conf = deployment.files["mosquitto/mosquitto.conf"]
    assert "allow_anonymous false" in conf and "set_tcp_nodelay true" in conf
    for user, password in deployment.passwords.items():
        assert password not in conf
        assert len(password) >= 24, user
    assert {"cloud", "b001", "b002", "b003"} <= set(deployment.passwords)
    with pytest.raises(ValueError, match="reserved"):
        render_deployment(["cloud"])
    with pytest.raises(ValueError):
        render_deployment(["Bad Site"])


def test_rerun_keeps_existing_credentials_unless_rotated(tmp_path: Path) -> None:
    first = write_deployment(tmp_path, site_ids(2))
    again = write_deployment(tmp_path, site_ids(2))
    assert again.passwords == first.passwords
    rotated = write_deployment(tmp_path, site_ids(2), rotate=True)
    assert rotated.passwords["b001"] != first.passwords["b001"]
    assert oct((tmp_path / "secrets" / "b001.pw").stat().st_mode & 0o777) == "0o600"
