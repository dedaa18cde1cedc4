"""The `gridflex` console script: one typer app; each package registers its own commands.

Heavy imports (pandapower, pyomo, BAC0, ...) happen inside the commands, so
`gridflex --help` stays fast.
"""

from __future__ import annotations

import typer

import cloud_controller.cli
import cloud_controller.study.cli
import edge_agent.cli
import simulators.cli
from gridflex import core_commands, demo, testbed_cmd, twin_cmd

app = typer.Typer(
    name="gridflex",
    help="GridFlex: grid-aware control of behind-the-meter flexibility.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

core_commands.register(app)
simulators.cli.register(app)
edge_agent.cli.register(app)
cloud_controller.cli.register(app)
cloud_controller.study.cli.register(app)
testbed_cmd.register(app)
demo.register(app)
twin_cmd.register(app)


if __name__ == "__main__":  # pragma: no cover
    app()
