"""The operator's web dashboard, served by the controller's FastAPI app with no request leaving the machine.

`mount_dashboard(app, controller)` adds the pages (`/`, `/ui/...`), their JSON API
(`/fleet/...`, `/sites/{id}/history`, `/events`, `/commands/log`, `/grid/network`) and the
static assets (our CSS/JS, plotly.js's basic bundle, gzipped, at a versioned URL). `mount_offline_docs(app)`
serves `/docs` and `/redoc` from local Swagger UI / ReDoc bundles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI

from cloud_controller.web.assets import PLOTLY_URL, mount_assets, mount_offline_docs
from cloud_controller.web.data_api import data_router
from cloud_controller.web.pages import Dashboard, NavItem

if TYPE_CHECKING:
    from cloud_controller.service import CloudController

__all__ = ["Dashboard", "NavItem", "mount_dashboard", "mount_offline_docs"]


def mount_dashboard(app: FastAPI, controller: CloudController) -> Dashboard:
    """The JSON endpoints always (they are API); the pages and assets unless `dashboard.enabled` is off."""
    app.include_router(data_router(controller), dependencies=[Depends(controller.auth.read)])
    dashboard = Dashboard(controller)
    dashboard.env.globals["plotly_js"] = PLOTLY_URL  # the bundle's versioned URL, for the chart pages
    if controller.config.dashboard.enabled:
        mount_assets(app)
        dashboard.mount(app)
    return dashboard
