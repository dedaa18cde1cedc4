"""Everything a page loads comes from this server: our static files, plotly.js, Swagger UI and ReDoc.

Why from installed packages and not copies in the repo: plotly's own `plotly.min.js`
(`plotly/package_data/`) is the exact build the Python library targets, and the
`fastapi-offline` wheel ships Swagger UI's and ReDoc's bundles; FastAPI's defaults load
both from a CDN, which is a blank page on an air-gapped control room.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

__all__ = ["DOCS_ASSETS_DIR", "PLOTLY_JS", "STATIC_DIR", "mount_assets", "mount_offline_docs"]

STATIC_DIR = Path(__file__).parent / "static"


def _package_dir(name: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"package {name!r} is not installed (a dependency of gridflex)")
    return Path(spec.origin).parent


PLOTLY_JS = _package_dir("plotly") / "package_data" / "plotly.min.js"
DOCS_ASSETS_DIR = _package_dir("fastapi_offline") / "static"


#: ReDoc's bundle draws its "powered by" logo from Redocly's CDN; ours points it at a local file.
REDOC_CDN_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
REDOC_LOCAL_LOGO = b"/static/docs/favicon.png"


def _redoc_js() -> bytes:
    return (DOCS_ASSETS_DIR / "redoc.standalone.js").read_bytes().replace(REDOC_CDN_LOGO, REDOC_LOCAL_LOGO)


def mount_assets(app: FastAPI) -> None:
    """`/static/*` (the dashboard's CSS/JS) and `/static/vendor/plotly.min.js` (after the docs' routes)."""

    @app.get("/static/vendor/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(
            PLOTLY_JS, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"}
        )

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


def mount_offline_docs(app: FastAPI) -> None:
    """`/docs` and `/redoc` from local assets (create the app with docs_url=None, redoc_url=None)."""
    app.mount("/static/docs", StaticFiles(directory=DOCS_ASSETS_DIR), name="docs-assets")
    redoc_js: list[bytes] = []  # read and patched on first use, then kept (1 MB)

    @app.get("/static/vendor/redoc.standalone.js", include_in_schema=False)
    def redoc_bundle() -> Response:
        if not redoc_js:
            redoc_js.append(_redoc_js())
        return Response(redoc_js[0], media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})

    title = app.title
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2 = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            oauth2_redirect_url=oauth2,
            swagger_js_url="/static/docs/swagger-ui-bundle.js",
            swagger_css_url="/static/docs/swagger-ui.css",
            swagger_favicon_url="/static/docs/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},  # no call to the online validator
        )

    @app.get(oauth2, include_in_schema=False)
    def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url="/static/vendor/redoc.standalone.js",
            redoc_favicon_url="/static/docs/favicon.png",
            with_google_fonts=False,
        )
