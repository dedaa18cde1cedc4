"""The dashboard's HTML pages: one Jinja2 layout with navigation; each page fills in its block.

Why server-rendered shells plus polling: a page arrives complete (title, navigation,
the first numbers) and then asks the JSON API beside it (`cloud_controller/web/data_api.py`)
for fresh values every `dashboard.poll_s`; no build step, no framework, nothing fetched
from another host. Later pages (DR, market, settlement) plug in with `Dashboard.add_page`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from cloud_controller.web import views

if TYPE_CHECKING:
    from cloud_controller.service import CloudController

__all__ = ["TEMPLATES_DIR", "Dashboard", "NavItem"]

TEMPLATES_DIR = Path(__file__).parent / "templates"

ContextFn = Callable[["CloudController", Request], dict[str, Any]]


@dataclass(frozen=True)
class NavItem:
    """One entry of the dashboard's navigation."""

    path: str
    title: str


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


class Dashboard:
    """The pages of one controller and their shared navigation."""

    def __init__(self, controller: CloudController) -> None:
        self.controller = controller
        self.nav: list[NavItem] = []
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES_DIR), autoescape=select_autoescape(["html"]), auto_reload=False
        )
        self.env.filters["tojson_safe"] = lambda v: json.dumps(v, default=_json_default).replace("</", "<\\/")

    def render(self, template: str, request: Request, **context: Any) -> HTMLResponse:
        """Render page `template` with the navigation, status banners and dashboard settings."""
        cfg = self.controller.config.dashboard
        page = {
            "nav": self.nav,
            "path": request.url.path,
            "timezone": cfg.timezone or "",
            "poll_ms": int(cfg.poll_s * 1000),
            "status": views.status(self.controller),
            **context,
        }
        return HTMLResponse(self.env.get_template(template).render(**page))

    def add_page(
        self, app: FastAPI, path: str, title: str, template: str, context: ContextFn | None = None
    ) -> None:
        """A page at `path` in the navigation, rendering `template` (which extends base.html)."""
        self.nav.append(NavItem(path, title))

        @app.get(path, include_in_schema=False, response_class=HTMLResponse, name=f"page:{path}")
        def page(request: Request) -> HTMLResponse:
            extra = context(self.controller, request) if context else {}
            return self.render(template, request, title=title, **extra)

    def mount(self, app: FastAPI) -> None:
        """The built-in pages: overview, grid, sites, commands, events; a site's own page."""
        self.add_page(app, "/", "Overview", "overview.html")
        self.add_page(app, "/ui/grid", "Grid", "grid.html")
        self.add_page(app, "/ui/sites", "Sites", "sites.html")
        self.add_page(app, "/ui/commands", "Commands", "commands.html")
        self.add_page(app, "/ui/events", "Events", "events.html")

        @app.get("/ui/sites/{site}", include_in_schema=False, response_class=HTMLResponse)
        def site_page(site: str, request: Request) -> HTMLResponse:
            snap = self.controller.snapshots.get(site)
            if snap is None:
                raise HTTPException(404, f"unknown site {site!r}")
            reg = next(s for s in self.controller.registry.sites if s.site == site)
            return self.render(
                "site.html",
                request,
                title=f"Site {site}",
                site=site,
                assets=[{"asset": a.asset, "kind": a.kind} for a in reg.assets],
            )
