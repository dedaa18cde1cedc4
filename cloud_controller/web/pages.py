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
from urllib.parse import parse_qs, quote

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from cloud_controller.auth import SESSION_COOKIE
from cloud_controller.web import views

if TYPE_CHECKING:
    from cloud_controller.service import CloudController

__all__ = ["TEMPLATES_DIR", "Dashboard", "NavItem"]

TEMPLATES_DIR = Path(__file__).parent / "templates"

ContextFn = Callable[["CloudController", Request], dict[str, Any]]
MAX_LOGIN_BODY = 4096  # bytes of the login form: a token and a path


@dataclass(frozen=True)
class NavItem:
    """One entry of the dashboard's navigation."""

    path: str
    title: str


def _safe_next(path: str | None) -> str:
    """Where to go after the login: a path on this server only (no `//host` or backslash tricks)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


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
        auth = self.controller.auth
        role = auth.page_role(request)
        page = {
            "nav": self.nav,
            "auth_on": auth.tokens.roles_on,
            "role": role,
            "may_operate": auth.may_operate(role),
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
        def page(request: Request) -> Response:
            if (login := self._login_needed(request)) is not None:
                return login
            extra = context(self.controller, request) if context else {}
            return self.render(template, request, title=title, **extra)

    def _login_needed(self, request: Request) -> Response | None:
        """A redirect to the login page when roles are on and the request has no valid session."""
        auth = self.controller.auth
        if not auth.tokens.roles_on or auth.page_role(request) is not None:
            return None
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    def mount_login(self, app: FastAPI) -> None:
        """`/login` (a token form that sets an HttpOnly, SameSite=Strict session cookie) and `/logout`."""
        auth = self.controller.auth

        def form(request: Request, next_path: str, error: str | None, status: int) -> HTMLResponse:
            html = self.env.get_template("login.html").render(next=next_path, error=error)
            return HTMLResponse(html, status_code=status)

        @app.get("/login", include_in_schema=False, response_class=HTMLResponse)
        def login_page(request: Request, next: str = "/") -> Response:
            if not auth.tokens.roles_on:
                return RedirectResponse("/", status_code=303)  # open demo: nothing to log in to
            return form(request, _safe_next(next), None, 200)

        @app.post("/login", include_in_schema=False, response_class=HTMLResponse)
        async def login(request: Request) -> Response:
            body = await request.body()
            if len(body) > MAX_LOGIN_BODY:
                raise HTTPException(413, f"the login form is at most {MAX_LOGIN_BODY} bytes")
            fields = parse_qs(body.decode("utf-8", errors="replace"))
            next_path = _safe_next((fields.get("next") or ["/"])[0])
            token = (fields.get("token") or [""])[0].strip()
            role = auth.tokens.role_of(token) if token and auth.tokens.roles_on else None
            if role is None:
                return form(request, next_path, "Wrong token.", 401)
            response = RedirectResponse(next_path, status_code=303)
            response.set_cookie(
                SESSION_COOKIE,
                auth.issue_session(role),
                max_age=int(auth.session_s),
                path="/",
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
            return response

        @app.post("/logout", include_in_schema=False)
        def logout() -> Response:
            response = RedirectResponse("/login", status_code=303)
            response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
            return response

    def mount(self, app: FastAPI) -> None:
        """The built-in pages: overview, grid, sites, commands, events; a site's own page; the login."""
        self.mount_login(app)
        self.add_page(app, "/", "Overview", "overview.html")
        self.add_page(app, "/ui/grid", "Grid", "grid.html")
        self.add_page(app, "/ui/sites", "Sites", "sites.html")
        self.add_page(app, "/ui/commands", "Commands", "commands.html")
        self.add_page(app, "/ui/events", "Events", "events.html")

        @app.get("/ui/sites/{site}", include_in_schema=False, response_class=HTMLResponse)
        def site_page(site: str, request: Request) -> Response:
            if (login := self._login_needed(request)) is not None:
                return login
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
