"""`gridflex bench --help` lists every benchmark in its order, and each command's `--help` answers.

The commands live in several modules (`gridflex/bench/*_cli.py`, `chain.py`); this pins
what the package assembles from them: the names, their order and each one's help.
"""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from gridflex.bench import bench_app

COMMANDS = (
    "contract",
    "dispatch",
    "congestion",
    "study",
    "ingest",
    "ingest-store",
    "store",
    "loop",
    "testbed",
    "records",
    "uftp",
    "settlement",
    "settlement-orders",
    "market",
    "dr-selection",
    "areas",
    "market-relief",
)
WIDE = {"COLUMNS": "200", "TERM": "dumb", "NO_COLOR": "1"}


def test_bench_help_lists_every_command_in_order() -> None:
    result = CliRunner().invoke(bench_app, ["--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    listed = re.findall(r"^│ ([a-z][a-z-]+) {2,}", result.output, re.M)
    assert tuple(listed) == COMMANDS


@pytest.mark.parametrize("command", COMMANDS)
def test_each_bench_command_answers_help_with_its_summary(command: str) -> None:
    result = CliRunner().invoke(bench_app, [command, "--help"], env=WIDE, prog_name="gridflex bench")
    assert result.exit_code == 0, result.output
    assert f"Usage: gridflex bench {command} [OPTIONS]" in " ".join(result.output.split())
    click_command = bench_app.registered_commands[COMMANDS.index(command)].callback
    assert click_command is not None and click_command.__doc__
    summary = click_command.__doc__.strip().splitlines()[0]
    assert summary[:40] in " ".join(result.output.split())


def test_an_unknown_bench_command_fails() -> None:
    result = CliRunner().invoke(bench_app, ["no-such-bench"], env=WIDE)
    assert result.exit_code == 2
