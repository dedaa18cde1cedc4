"""`gridflex ven`: GridFlex as an OpenADR 3 VEN of a utility's VTN (docs/openadr.md §7).

`check-config FILE` validates the VEN file, its credentials and the operator token file
without calling anyone; `run FILE` registers the VEN, subscribes (`subscribe: true`) and
polls the VTN until SIGTERM/Ctrl-C (`--once`: registration and one poll, no subscription,
the counters printed as JSON, exit 1 when the poll or the registration failed). A bad file is one line
`file:key: reason` and exit 2.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from gridflex.cli.core import LogLevel
from protocols.errors import ConfigError

__all__ = ["register"]

EXIT_CONFIG = 2


def _loaded(path: Path, cmd: str) -> tuple[Any, Any, str]:
    from cloud_controller.openadr.ven import load_credentials, load_operator_token, load_ven_config

    try:
        cfg = load_ven_config(path)
        return cfg, load_credentials(cfg, file=str(path)), load_operator_token(cfg)
    except ConfigError as exc:
        typer.echo(f"gridflex ven {cmd}: {exc}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None


async def _serve(cfg: Any, creds: Any, token: str, *, once: bool) -> dict[str, Any]:
    import httpx

    from cloud_controller.openadr.ven import DrApiClient, VenService, VtnClient
    from protocols.clock import RealClock

    clock = RealClock()
    async with (
        httpx.AsyncClient(timeout=cfg.vtn.timeout_s, follow_redirects=False) as vtn_http,
        httpx.AsyncClient(timeout=cfg.dr_api.timeout_s, follow_redirects=False) as dr_http,
    ):
        service = VenService(
            cfg,
            VtnClient(vtn_http, cfg.vtn.url, creds, clock=clock),
            DrApiClient(dr_http, cfg.dr_api.url, token),
            clock=clock,
        )
        return await service.run(once=once)


def register(app: typer.Typer) -> None:
    """Add `gridflex ven` to the `gridflex` app."""
    ven = typer.Typer(
        help="GridFlex as an OpenADR 3 VEN: a utility's events → DR requests → delivery reports."
    )

    @ven.command("check-config")
    def check_config(file: Annotated[Path, typer.Argument(metavar="FILE", help="the VEN's YAML")]) -> None:
        """Validate the VEN file, its credentials and the operator token; print the config (no secrets)."""
        cfg, creds, _ = _loaded(file, "check-config")
        typer.echo(cfg.model_dump_json(indent=2))
        typer.echo(f"vtn client: {creds.client_id}; programmes: {', '.join(p.program for p in cfg.programs)}")

    @ven.command("run")
    def run(
        file: Annotated[Path, typer.Argument(metavar="FILE", help="the VEN's YAML")],
        once: Annotated[bool, typer.Option("--once", help="one poll, print its counters as JSON")] = False,
        log_level: Annotated[LogLevel, typer.Option(case_sensitive=False, help="log level")] = LogLevel.INFO,
    ) -> None:
        """Poll the VTN every `poll_interval_s` until SIGTERM/Ctrl-C (or once)."""
        cfg, creds, token = _loaded(file, "run")
        logging.basicConfig(level=log_level.value, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        if once:
            import asyncio

            status = asyncio.run(_serve(cfg, creds, token, once=True))
            typer.echo(json.dumps(status, indent=2))
            if status["stats"]["poll_errors"] or status["ven"]["registration_errors"]:
                raise typer.Exit(1)
            return
        from gridflex.ops.runner import run_until_signal

        async def service() -> None:
            await _serve(cfg, creds, token, once=False)

        run_until_signal(service, name="ven")

    app.add_typer(ven, name="ven")
