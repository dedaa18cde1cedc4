"""The `gridflex` console script: one typer app; each module of this package adds its commands.

The domain packages keep plain functions; the commands that call them live here, so
`edge_agent`, `cloud_controller` and `simulators` carry no typer code. Heavy imports
(pandapower, pyomo, BAC0, ...) happen inside the commands, so `gridflex --help` stays fast.
"""

from __future__ import annotations

import typer

from gridflex.cli import chaos, cloud, core, demo, edge, forecast_quality, sim, study, testbed, twin, ven

__all__ = ["app"]

app = typer.Typer(
    name="gridflex",
    help="GridFlex: grid-aware control of behind-the-meter flexibility.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

core.register(app)
sim.register(app)
edge.register(app)
cloud.register(app)
study.register(app)
testbed.register(app)
demo.register(app)
twin.register(app)
chaos.register(app)
forecast_quality.register(app)
ven.register(app)


if __name__ == "__main__":  # pragma: no cover
    app()
