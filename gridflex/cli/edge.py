"""`gridflex edge --config site.yaml` (run the agent), `edge check-config` and `edge safe-state`."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from gridflex.cli.core import LogLevel
from protocols.errors import ConfigError

EXIT_CONFIG = 2


def _load(path: Path):  # type: ignore[no-untyped-def]  # returns SiteConfig; imported lazily
    from edge_agent.config import load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        typer.echo(f"config error: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None


def _configure_logging(json_logs: bool, level: str) -> None:
    from edge_agent.health import JsonFormatter

    handler = logging.StreamHandler(sys.stderr)
    if json_logs:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def register(app: typer.Typer) -> None:
    """Add the `edge` command group to the `gridflex` app."""
    edge = typer.Typer(help="Site gateway agent: drivers, store-and-forward telemetry, commands, fallback.")

    @edge.callback(invoke_without_command=True)
    def run(
        ctx: typer.Context,
        config: Annotated[
            Path | None,
            typer.Option("--config", "-c", metavar="FILE", help="site YAML (required to run the agent)"),
        ] = None,
        log_level: Annotated[LogLevel, typer.Option(case_sensitive=False, help="log level")] = LogLevel.INFO,
        log_json: Annotated[
            bool, typer.Option("--log-json", help="JSON log lines (or `health.log_json` in the YAML)")
        ] = False,
    ) -> None:
        """Run the edge agent on CONFIG until SIGTERM/SIGINT (exit 0)."""
        if ctx.invoked_subcommand is not None:
            return
        if config is None:
            typer.echo(ctx.get_help())
            typer.echo("gridflex edge: --config FILE is required", err=True)
            raise typer.Exit(EXIT_CONFIG)
        cfg = _load(config)
        _configure_logging(log_json or cfg.health.log_json, log_level.value)
        from edge_agent import EdgeAgent
        from gridflex.ops.runner import run_until_signal
        from protocols.clock import RealClock

        run_until_signal(lambda: EdgeAgent(cfg, clock=RealClock()).run(), name="edge agent")

    @edge.command("check-config")
    def check_config(file: Annotated[Path, typer.Argument(metavar="FILE", help="site YAML")]) -> None:
        """Validate FILE and print the resolved config (secrets masked), or the error (exit 2)."""
        cfg = _load(file)
        data = cfg.model_dump(mode="json")
        data["broker"]["password"] = "**********" if cfg.broker.password is not None else None
        data["signing"]["key"] = "**********" if cfg.signing.key is not None else None
        data["config_hash"] = cfg.config_hash
        typer.echo(json.dumps(data, indent=2))

    @edge.command("safe-state")
    def safe_state(
        file: Annotated[Path, typer.Argument(help="site YAML")],
        timeout_s: Annotated[
            float, typer.Option("--timeout-s", min=1.0, help="bound on all writes, s")
        ] = 15.0,
    ) -> None:
        """Write every asset's safe state once, without broker or queue (systemd `ExecStopPost=`).

        Exit 0 when every write was made, 1 when one failed or was refused (each printed), 2 on bad config.
        """
        import asyncio

        from edge_agent.safe_exit import write_safe_state

        cfg = _load(file)
        report = asyncio.run(write_safe_state(cfg, timeout_s=timeout_s))
        for e in report.events:
            typer.echo(f"{e.severity}: {e.kind}: {e.message}", err=e.severity == "critical")
        typer.echo(f"{cfg.site}: safe state {'written' if report.ok else 'NOT fully written'}")
        raise typer.Exit(0 if report.ok else 1)

    app.add_typer(edge, name="edge")
