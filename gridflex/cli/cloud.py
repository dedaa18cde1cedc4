"""Commands of `cloud_controller` for the `gridflex` console script: `cloud`, `cloud check-config`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from gridflex.cli.core import LogLevel
from gridflex.cli.ports import require_free_port
from protocols.errors import ConfigError, GridflexError

__all__ = ["CloudRole", "register"]

EXIT_CONFIG = 2


class CloudRole(StrEnum):
    """`--role`: ingest and dispatch together (all), or one of them (scale-out)."""

    all = "all"
    ingest = "ingest"
    dispatch = "dispatch"


def _load(config: Path, registry_path: Path | None) -> tuple[object, object]:
    from cloud_controller import load_cloud_config, load_registry

    cfg = load_cloud_config(config)
    path = registry_path or cfg.registry
    if path is None:
        raise ConfigError(
            "no registry: set `registry:` (a registry YAML or manifest.json)",
            file=str(config),
            key="registry",
        )
    return cfg, load_registry(path)


T = TypeVar("T")


def _start(build: Callable[[], T]) -> T:
    """Build the controller (its store opens here): a store that cannot open is one line, not a traceback."""
    try:
        return build()
    except ConfigError as exc:
        typer.echo(f"gridflex cloud: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    except GridflexError as exc:
        reason = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())  # libpq: 2 lines
        typer.echo(f"gridflex cloud: cannot start: {reason}", err=True)
        raise typer.Exit(1) from None


def register(app: typer.Typer) -> None:
    """Add `gridflex cloud` (the controller service) to the `gridflex` app."""
    cloud_app = typer.Typer(
        help="The cloud controller: ingest, store, forecast, dispatch, commands, HTTP API.",
        invoke_without_command=True,
        no_args_is_help=False,
    )

    @cloud_app.callback()
    def cloud(
        ctx: typer.Context,
        config: Annotated[
            Path | None,
            typer.Option("--config", metavar="FILE", help="cloud.yaml (required to run the service)"),
        ] = None,
        registry: Annotated[
            Path | None,
            typer.Option(
                "--registry", metavar="FILE", help="registry YAML or manifest.json; overrides `registry:`"
            ),
        ] = None,
        role: Annotated[
            CloudRole, typer.Option("--role", help="which part of the service this process runs")
        ] = (CloudRole.all),
        worker: Annotated[
            str | None,
            typer.Option(
                "--worker",
                help="name of this worker among several of a role (MQTT client id suffix)",
                show_default="none",
            ),
        ] = None,
        api_port: Annotated[
            int | None,
            typer.Option(
                "--api-port",
                min=0,
                max=65535,
                help="overrides `api.port`; 0 = any free port",
                show_default="api.port",
            ),
        ] = None,
        log_level: Annotated[LogLevel, typer.Option(case_sensitive=False, help="log level")] = LogLevel.INFO,
    ) -> None:
        """Run the controller service until SIGTERM/Ctrl-C (exit 2 on a bad config or a taken port).

        Scale-out: one `--role dispatch` worker and any number of `--role ingest` workers
        (each with its own `--worker` name) sharing one store file.
        """
        if ctx.invoked_subcommand is not None:
            return
        if config is None:
            typer.echo("gridflex cloud: --config FILE is required", err=True)
            raise typer.Exit(EXIT_CONFIG)
        try:
            cfg, reg = _load(config, registry)
        except ConfigError as exc:
            typer.echo(f"gridflex cloud: {exc}", err=True)
            raise typer.Exit(EXIT_CONFIG) from None
        from cloud_controller import CloudConfig

        assert isinstance(cfg, CloudConfig)
        if cfg.api.enabled:  # before anything is built: a taken port is one line, not a traceback
            port = cfg.api.port if api_port is None else api_port
            where = "--api-port" if api_port is not None else f"`api.port` in {config}"
            hint = f"set by {where}; stop what listens there or choose another port"
            require_free_port("gridflex cloud", cfg.api.host, port, hint)
        logging.basicConfig(level=log_level.value, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

        if worker is not None or api_port is not None:
            if worker is not None:
                broker = cfg.broker.model_copy(update={"client_id": f"{cfg.broker.client_id}-{worker}"})
                cfg = cfg.model_copy(update={"broker": broker})
            if api_port is not None:
                cfg = cfg.model_copy(update={"api": cfg.api.model_copy(update={"port": api_port})})

        from cloud_controller import CloudConfig, CloudController, Registry
        from gridflex.ops.runner import run_until_signal
        from protocols.clock import RealClock

        assert isinstance(cfg, CloudConfig) and isinstance(reg, Registry)
        controller = _start(lambda: CloudController(cfg, reg, clock=RealClock(), role=role.value))
        run_until_signal(controller.run, name="controller")

    @cloud_app.command("check-config")
    def check_config(
        config: Annotated[Path, typer.Argument(metavar="FILE", help="cloud.yaml")],
        registry: Annotated[
            Path | None,
            typer.Option(
                "--registry", metavar="FILE", help="registry YAML or manifest.json; overrides `registry:`"
            ),
        ] = None,
    ) -> None:
        """Validate cloud.yaml (and its registry); print the resolved config or exit 2 with the reason."""
        try:
            cfg, reg = _load(config, registry)
        except ConfigError as exc:
            typer.echo(f"gridflex cloud check-config: {exc}", err=True)
            raise typer.Exit(EXIT_CONFIG) from None
        from cloud_controller import CloudConfig, Registry

        assert isinstance(cfg, CloudConfig) and isinstance(reg, Registry)
        typer.echo(cfg.model_dump_json(indent=2))
        typer.echo(f"registry: {len(reg.sites)} sites")

    app.add_typer(cloud_app, name="cloud")
