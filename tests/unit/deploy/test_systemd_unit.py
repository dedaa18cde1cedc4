"""The edge agent's systemd unit: every Exec line is a real subcommand, and the safe state follows any stop."""

from __future__ import annotations

import configparser
from pathlib import Path

from typer.main import get_command

from gridflex.cli import app

UNIT = Path(__file__).resolve().parents[3] / "deploy" / "systemd" / "gridflex-edge.service"


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def test_safe_state_runs_after_every_stop_and_a_crash_loop_is_bounded() -> None:
    unit = _unit()
    post = unit["Service"]["ExecStopPost"]
    # "-": a failed safe-state run is logged but does not hide why the agent stopped
    assert post.startswith("-/") and post.split()[1:] == ["edge", "safe-state", "/etc/gridflex/site.yaml"]
    # start limits belong to [Unit]: in [Service] systemd ignores them with a warning
    assert "StartLimitBurst" in unit["Unit"] and "StartLimitBurst" not in unit["Service"]
    assert int(unit["Unit"]["StartLimitBurst"]) >= 3


def test_the_safe_state_subcommand_exists_with_the_units_arguments() -> None:
    edge = get_command(app).commands["edge"]  # type: ignore[attr-defined]
    safe_state = edge.commands["safe-state"]
    assert [p.name for p in safe_state.params if p.required] == ["file"]
