"""`gridflex <cmd> --help` as a newcomer reads it: flags as flags, defaults shown, one `--sites` range.

In-process with typer's CliRunner (no subprocess): the help text is the behaviour here.
"""

from __future__ import annotations

import functools
import re

import pytest
from typer.testing import CliRunner

from gridflex.cli import app
from gridflex.cli.core import SITES_MAX

runner = CliRunner()
COMMANDS = [
    [],
    ["schema"],
    ["broker"],
    ["deploy-config"],
    ["sim"],
    ["edge"],
    ["edge", "check-config"],
    ["cloud"],
    ["cloud", "check-config"],
    ["study"],
    ["testbed"],
    ["demo"],
    ["twin"],
]


@functools.cache
def _help(*args: str) -> str:
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"})
    assert result.exit_code == 0, result.output
    return result.output


def _row(text: str, option: str) -> str:
    """The help table's line of `option` (and its wrapped continuation lines, joined)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", line):
            out = [line]
            for nxt in lines[i + 1 :]:
                if re.search(r"│\s+--", nxt) or "─" in nxt:
                    break
                out.append(nxt)
            return " ".join(out)
    raise AssertionError(f"{option} not in:\n{text}")


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "gridflex")
def test_no_flag_is_shown_as_taking_a_bool(cmd: list[str]) -> None:
    text = _help(*cmd)
    assert "<bool>" not in text
    assert "--help" in text


@pytest.mark.parametrize(
    ("cmd", "option", "default"),
    [
        (["sim"], "--sites", "3"),
        (["sim"], "--speed", "1.0"),
        (["sim"], "--duration", "until Ctrl-C/SIGTERM"),
        (["sim"], "--step", "max(1, speed/10)"),
        (["sim"], "--bacnet", "bacnet"),
        (["sim"], "--log-level", "WARNING"),
        (["testbed"], "--poll-s", "5.0"),
        (["testbed"], "--secrets", "anonymous"),
        (["cloud"], "--role", "all"),
        (["cloud"], "--log-level", "INFO"),
        (["cloud"], "--api-port", "api.port"),
        (["study"], "--scenarios", "the YAML's"),
        (["twin"], "--battery-control", "setpoint"),
        (["broker"], "--port", "1883"),
    ],
    ids=lambda v: v if isinstance(v, str) else " ".join(v),
)
def test_defaults_are_shown(cmd: list[str], option: str, default: str) -> None:
    row = _row(_help(*cmd), option)
    assert f"[default: {default}]" in row or f"[default: ({default})]" in row, row


@pytest.mark.parametrize(
    ("cmd", "option"), [(["sim"], "--out"), (["testbed"], "--out"), (["deploy-config"], "--out")]
)
def test_required_options_are_marked_required(cmd: list[str], option: str) -> None:
    assert "[required]" in _row(_help(*cmd), option)


@pytest.mark.parametrize("cmd", [["sim"], ["testbed"], ["twin"]], ids=lambda c: c[0])
def test_sites_has_one_range_everywhere(cmd: list[str]) -> None:
    assert f"[1<=x<={SITES_MAX}]" in _row(_help(*cmd), "--sites")


@pytest.mark.parametrize("cmd", [["sim"], ["testbed"]], ids=lambda c: c[0])
def test_time_units_are_written_as_s(cmd: list[str]) -> None:
    text = _help(*cmd)
    assert "simulated s per wall s" in _row(text, "--speed")
    assert "(wall s)" in _row(text, "--duration")
    assert "seconds" not in text


def test_choices_are_listed_and_checked() -> None:
    assert "all|ingest|dispatch" in _row(_help("cloud"), "--role")
    bad = runner.invoke(app, ["twin", "--battery-control", "nonsense"])
    assert bad.exit_code == 2
