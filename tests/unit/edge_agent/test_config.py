"""Site YAML validation: the example validates, every broken rule names its dotted key."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.config import load_config
from protocols.errors import ConfigError

ROOT = Path(__file__).parents[3]
EXAMPLE = ROOT / "examples" / "site.yaml"


def _base() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return data


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_example_validates_and_resolves_paths() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.site == "b001"
    assert cfg.buffer.path == EXAMPLE.parent / "state" / "b001.sqlite"
    assert cfg.asset("hp1").guaranteed_min_kw == 4.2
    assert cfg.asset("pv1").guaranteed_min_kw is None
    assert cfg.device("inverter").driver == "modbus"
    assert cfg.asset("pv1").controls["p_limit_kw"].factor == 12.5
    assert len(cfg.config_hash) == 16


def test_docs_example_matches_example_file() -> None:
    """docs/site-config.md and examples/site.yaml describe the same site."""
    doc = (ROOT / "docs" / "site-config.md").read_text().split("```yaml\n")[1].split("```")[0]
    data = yaml.safe_load(doc)
    data["broker"].pop("password_file")
    data["broker"].pop("username")
    assert data == _base()


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    node: Any = data
    parts = dotted.replace("[", ".").replace("]", "").split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last = parts[-1]
    if value is _DELETE:
        del node[int(last) if last.isdigit() else last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value


_DELETE = object()

BAD = [
    ("unknown_top_key", "colour", "red", "colour"),
    ("typo_in_point", "assets[0].points[0].scael", 1.0, "assets[0].points[0].scael"),
    ("bad_site_id", "site", "B 1", "site"),
    ("unknown_driver", "devices[0].driver", "canbus", "devices[0]"),
    ("modbus_port_range", "devices[0].port", 70000, "devices[0].port"),
    ("unknown_device", "assets[0].points[0].device", "nope", "assets[0].points[0].device"),
    ("modbus_point_without_type", "assets[0].points[0].type", _DELETE, "assets[0].points[0].type"),
    ("bacnet_point_without_object", "assets[0].points[3].object", _DELETE, "assets[0].points[3].object"),
    (
        "control_on_missing_point",
        "assets[0].controls.p_limit_kw.point",
        "nope",
        "assets[0].controls.p_limit_kw.point",
    ),
    (
        "control_on_readonly_point",
        "assets[1].points[0].writable",
        False,
        "assets[1].controls.p_limit_kw.point",
    ),
    (
        "unknown_command_kind",
        "assets[1].controls",
        {"p_lim": {"point": "p_limit_kw"}},
        "assets[1].controls.p_lim",
    ),
    (
        "safe_state_needs_action",
        "assets[0].safe_state[0]",
        {"point": "wmaxlim_ena"},
        "assets[0].safe_state[0]",
    ),
    (
        "relinquish_on_modbus",
        "assets[0].safe_state[0]",
        {"point": "wmaxlim_ena", "relinquish": True},
        "assets[0].safe_state[0].relinquish",
    ),
    (
        "safe_state_below_14a",
        "assets[1].safe_state[0]",
        {"point": "p_limit_kw", "write": 2.0},
        "assets[1].safe_state[0].write",
    ),
    ("min_above_max", "assets[0].points[1].min", 200.0, "assets[0].points[1]"),
    ("batch_too_big", "buffer.batch_max", 5000, "buffer.batch_max"),
    ("secret_in_yaml", "broker.password", "hunter2", "broker.password"),
    (
        "tls_client_cert_file_missing",
        "broker.tls",
        {"cert_file": "c.pem", "key_file": "k.pem"},
        "broker.tls.cert_file",
    ),
]


@pytest.mark.parametrize(("dotted", "value", "key"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_config_names_the_key(tmp_path: Path, dotted: str, value: Any, key: str) -> None:
    data = copy.deepcopy(_base())
    _set(data, dotted, value)
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == key, str(info.value)
    assert info.value.file == str(path)


def test_duplicate_point_name_is_refused(tmp_path: Path) -> None:
    data = _base()
    data["assets"][0]["points"].append(dict(data["assets"][0]["points"][0]))
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, data))
    assert info.value.key == "assets[0].points[4].name"


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("site: b1\ndevices: [\n")
    with pytest.raises(ConfigError, match="line"):
        load_config(path)


def test_secrets_from_file_and_env_are_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _base()
    (tmp_path / "pw").write_text("s3cret\n")
    (tmp_path / "key.hex").write_text("00ff" * 8)
    data["broker"]["password_file"] = "pw"
    data["signing"]["key_file"] = "key.hex"
    cfg = load_config(_write(tmp_path, data))
    assert cfg.broker.password is not None and cfg.broker.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(cfg)
    assert cfg.signing.key_bytes() == bytes.fromhex("00ff" * 8)
    data["broker"].pop("password_file")
    data["broker"]["password_env"] = "GF_TEST_PW"
    monkeypatch.setenv("GF_TEST_PW", "fromenv")
    cfg = load_config(_write(tmp_path, data))
    assert cfg.broker.password is not None and cfg.broker.password.get_secret_value() == "fromenv"
    monkeypatch.delenv("GF_TEST_PW")
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, data))
    assert info.value.key == "broker.password_env"


def test_check_config_cli_exit_codes(tmp_path: Path) -> None:
    gridflex = Path(sys.executable).parent / "gridflex"
    data = _base()
    (tmp_path / "pw").write_text("s3cret")
    data["broker"]["password_file"] = "pw"
    ok = subprocess.run(
        [gridflex, "edge", "check-config", _write(tmp_path, data)], capture_output=True, text=True, timeout=60
    )
    assert ok.returncode == 0, ok.stderr
    assert '"site": "b001"' in ok.stdout
    assert "s3cret" not in ok.stdout and "**********" in ok.stdout
    data["assets"][0]["controls"]["p_limit_kw"]["point"] = "p_kw"
    bad = subprocess.run(
        [gridflex, "edge", "check-config", _write(tmp_path, data)], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2
    assert "assets[0].controls.p_limit_kw.point" in bad.stderr
    assert "writable" in bad.stderr
    run = subprocess.run(
        [gridflex, "edge", "--config", tmp_path / "site.yaml"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2 and "assets[0].controls.p_limit_kw.point" in run.stderr
