"""A misspelt key in cloud.yaml, a site YAML or the registry: one line "file:key: unknown key 'x'
(did you mean 'y'?)" and exit 2, from the loaders and from the commands (CliRunner, in-process)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cloud_controller.config import load_cloud_config
from cloud_controller.registry import load_registry
from edge_agent.config import load_config
from gridflex.cli import app
from protocols.config_errors import unknown_key_reason
from protocols.errors import ConfigError

EXAMPLES = Path(__file__).parents[3] / "examples"
runner = CliRunner()


@pytest.mark.parametrize(
    ("key", "allowed", "reason"),
    [
        ("perod_s", ["period_s", "margin_s"], "unknown key 'perod_s' (did you mean 'period_s'?)"),
        ("zzz", ["period_s", "margin_s"], "unknown key 'zzz'"),
        ("brokr", ["broker", "store"], "unknown key 'brokr' (did you mean 'broker'?)"),
    ],
    ids=["close", "nothing-close", "section"],
)
def test_unknown_key_reason_suggests_only_a_close_match(key: str, allowed: list[str], reason: str) -> None:
    assert unknown_key_reason(key, allowed) == reason


def _cloud_yaml(tmp_path: Path, section: str, key: str) -> Path:
    doc = yaml.safe_load((EXAMPLES / "cloud.yaml").read_text())
    doc[section][key] = 1
    path = tmp_path / "cloud.yaml"
    path.write_text(yaml.safe_dump(doc))
    (tmp_path / "registry.yaml").write_text((EXAMPLES / "registry.yaml").read_text())
    return path


@pytest.mark.parametrize(
    ("section", "key", "meant"),
    [("control", "perod_s", "period_s"), ("api", "prot", "port"), ("broker", "client", "client_id")],
    ids=["control", "api", "broker"],
)
def test_cloud_config_names_file_key_and_the_key_meant(
    tmp_path: Path, section: str, key: str, meant: str
) -> None:
    path = _cloud_yaml(tmp_path, section, key)
    with pytest.raises(ConfigError) as err:
        load_cloud_config(path)
    assert str(err.value) == f"{path}:{section}.{key}: unknown key {key!r} (did you mean {meant!r}?)"


def test_gridflex_cloud_prints_the_one_line_and_exits_2(tmp_path: Path) -> None:
    path = _cloud_yaml(tmp_path, "control", "perod_s")
    for args in (["cloud", "--config", str(path)], ["cloud", "check-config", str(path)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1
        assert lines[0].endswith(f"{path}:control.perod_s: unknown key 'perod_s' (did you mean 'period_s'?)")


SITE = """
site: b001
broker: {host: 127.0.0.1, port: 1883}
buffer: {path: buf.sqlite}
poll: {interval_s: 1.0}
devices:
  - {id: meter, driver: modbus, template: sunspec-meter, host: 127.0.0.1, port: 5020, unit_id: 1}
  - {id: bms, driver: bacnet, template: bacnet-bms, address: "127.0.0.1:47809", device_id: 100001}
assets:
  - {id: meter, kind: meter}
"""


@pytest.mark.parametrize(
    ("path", "key", "meant"),
    [
        (("poll",), "intervl_s", "interval_s"),
        (("devices", 0), "unit_idd", "unit_id"),  # a Modbus device (discriminated union)
        (("devices", 1), "adress", "address"),  # a BACnet device
        (("assets", 0), "knd", "kind"),
    ],
    ids=["poll", "modbus-device", "bacnet-device", "asset"],
)
def test_edge_config_names_file_key_and_the_key_meant(
    tmp_path: Path, path: tuple[str | int, ...], key: str, meant: str
) -> None:
    doc = yaml.safe_load(SITE)
    node = doc
    for part in path:
        node = node[part]
    node[key] = 1
    file = tmp_path / "site.yaml"
    file.write_text(yaml.safe_dump(doc))
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    with pytest.raises(ConfigError) as err:
        load_config(file)
    assert str(err.value) == f"{file}:{where}.{key}: unknown key {key!r} (did you mean {meant!r}?)"
    result = runner.invoke(app, ["edge", "check-config", str(file)])
    assert result.exit_code == 2
    assert result.output.strip().endswith(f"unknown key {key!r} (did you mean {meant!r}?)")


def test_registry_names_file_key_and_the_key_meant(tmp_path: Path) -> None:
    doc = yaml.safe_load((EXAMPLES / "registry.yaml").read_text())
    doc["sites"][1]["assets"][2]["capacity_kw"] = 16.0
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as err:
        load_registry(path)
    assert str(err.value) == (
        f"{path}:sites[1].assets[2].capacity_kw: unknown key 'capacity_kw' (did you mean 'capacity_kwh'?)"
    )
