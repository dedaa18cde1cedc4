"""`gridflex ven check-config` / `run --once` in-process (CliRunner): one line `file:key: reason` and exit 2 on a bad file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from gridflex.cli import app

runner = CliRunner()
GOOD = {
    "vtn": {"url": "http://127.0.0.1:9/openadr3", "credentials_file": "ven-client.yaml"},
    "dr_api": {"url": "http://127.0.0.1:9", "operator_token_file": "op.token"},
    "poll_interval_s": 5,
    "programs": [{"program": "congestion-nl", "dr_program": "peak", "simple_levels_kw": {1: 10}}],
}


def _files(tmp: Path, doc: dict[str, object], *, creds: bool = True) -> Path:
    (tmp / "op.token").write_text("operator-0123456789abcdef\n", encoding="utf-8")
    if creds:
        (tmp / "ven-client.yaml").write_text(
            "client_id: ven-1\nsecret: s3cret-0123456789ab\n", encoding="utf-8"
        )
    path = tmp / "ven.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_check_config_prints_the_config_without_the_secret(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ven", "check-config", str(_files(tmp_path, GOOD))])
    assert result.exit_code == 0, result.output
    assert "vtn client: ven-1; programmes: congestion-nl" in result.output
    assert "s3cret" not in result.output


def _bad(key: str, value: object) -> dict[str, object]:
    doc: dict[str, Any] = yaml.safe_load(yaml.safe_dump(GOOD))
    section, _, field = key.partition(".")
    if field:
        doc[section][field] = value
    else:
        doc[section] = value
    return doc


@pytest.mark.parametrize(
    ("doc", "where", "reason"),
    [
        (
            _bad("vtn.url", "http://utility.example/openadr3"),
            "vtn.url",
            "plain http is allowed to a loopback host only",
        ),
        (_bad("vtn.urll", "x"), "vtn.urll", "unknown key 'urll' (did you mean 'url'?)"),
        (_bad("poll_interval_s", 0), "poll_interval_s", "greater than or equal to 1"),
        (_bad("programs", []), "programs", "at least 1 item"),
        (
            _bad("programs", [{"program": "x", "dr_program": "peak"}, {"program": "x", "dr_program": "p2"}]),
            "programs",
            "programme(s) ['x'] mapped twice",
        ),
        (
            _bad("programs", [{"program": "x", "dr_program": "Peak!"}]),
            "programs[0].dr_program",
            "should match pattern",
        ),
    ],
    ids=[
        "http-not-loopback",
        "misspelt-key",
        "poll-interval",
        "no-programme",
        "programme-twice",
        "dr-program-id",
    ],
)
def test_bad_config_is_one_line_naming_file_key_and_reason(
    tmp_path: Path, doc: dict[str, object], where: str, reason: str
) -> None:
    path = _files(tmp_path, doc)
    result = runner.invoke(app, ["ven", "check-config", str(path)])
    assert result.exit_code == 2
    assert result.output.startswith(f"gridflex ven check-config: {path}:{where}: ")
    assert reason in result.output


def test_missing_credentials_name_the_file_and_env_vars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GRIDFLEX_VEN_CLIENT_ID", raising=False)
    monkeypatch.delenv("GRIDFLEX_VEN_CLIENT_SECRET", raising=False)
    doc = _bad("vtn.credentials_file", None)
    result = runner.invoke(app, ["ven", "run", "--once", str(_files(tmp_path, doc, creds=False))])
    assert result.exit_code == 2
    assert "vtn.credentials_file: no VTN credentials" in result.output
    assert "GRIDFLEX_VEN_CLIENT_SECRET" in result.output


def test_credentials_from_the_environment_and_a_failed_poll_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRIDFLEX_VEN_CLIENT_ID", "ven-env")
    monkeypatch.setenv("GRIDFLEX_VEN_CLIENT_SECRET", "env-secret-0123456789")
    path = _files(tmp_path, _bad("vtn.credentials_file", None), creds=False)
    assert "vtn client: ven-env" in runner.invoke(app, ["ven", "check-config", str(path)]).output
    result = runner.invoke(app, ["ven", "run", "--once", str(path)])  # nothing listens on 127.0.0.1:9
    assert result.exit_code == 1
    assert '"poll_errors": 1' in result.output and "GET /auth/server: no answer" in result.output


def test_the_example_file_is_valid(tmp_path: Path) -> None:
    from cloud_controller.openadr.ven.config import load_ven_config

    cfg = load_ven_config(Path(__file__).parents[3] / "examples" / "ven.yaml")
    assert [(p.program, p.dr_program, p.simple_levels_kw) for p in cfg.programs] == [
        ("congestion-nl", "peak", {1: 10.0, 2: 20.0, 3: 40.0})
    ]
    assert cfg.dr_api.operator_token_file.name == "operator.token" and cfg.vtn.credentials_file is None
