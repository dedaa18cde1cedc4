"""Everything a page loads comes from this server: our static files, plotly.js, Swagger UI and ReDoc.

Why plotly.js's *basic* bundle, vendored (`vendor/`, MIT, from plotly's own
`plotly.js-basic-dist-min` package, the same version 4.1.1 the `plotly` Python package
ships in full): the dashboard draws only scatter traces (lines, markers, fills), and the
full bundle is 4.8 MB raw, 1.47 MB gzipped, which alone breaks issue 18's < 1 MB per page;
the basic one is 1.19 MB raw, 0.39 MB gzipped. It is compressed once and served with a
content-hashed URL as `immutable`, so a browser downloads it once per version.

Swagger UI and ReDoc come from the `fastapi-offline` wheel: FastAPI's defaults load both
from a CDN, which is a blank page on an air-gapped control room.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

__all__ = [
    "DOCS_ASSETS_DIR",
    "PLOTLY_JS",
    "PLOTLY_URL",
    "STATIC_DIR",
    "accepts_gzip",
    "mount_assets",
    "mount_offline_docs",
]

STATIC_DIR = Path(__file__).parent / "static"
PLOTLY_JS = Path(__file__).parent / "vendor" / "plotly-basic-4.1.1.min.js"
#: a year: the URL changes whenever the bytes do, so a cached copy is never stale
IMMUTABLE = "public, max-age=31536000, immutable"


def _package_dir(name: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"package {name!r} is not installed (a dependency of gridflex)")
    return Path(spec.origin).parent


DOCS_ASSETS_DIR = _package_dir("fastapi_offline") / "static"


@dataclass(frozen=True)
class _Bundle:
    """One script, raw and gzipped, with its strong ETag."""

    raw: bytes
    gz: bytes
    etag: str


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


#: the pages' script URL: the bundle's content hash in the name, so a new bundle is a new URL
PLOTLY_URL = f"/static/vendor/plotly-basic.{_digest(PLOTLY_JS)}.min.js"


@functools.cache
def _plotly_bundle() -> _Bundle:
    """Read and compress once per process (level 9 takes ~0.1 s, not worth paying per request)."""
    raw = PLOTLY_JS.read_bytes()
    return _Bundle(
        raw, gzip.compress(raw, compresslevel=9, mtime=0), f'"{hashlib.sha256(raw).hexdigest()[:32]}"'
    )


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header allows gzip (`gzip`, `gzip;q=0.5` or `*`, but not `q=0`)."""
    for item in accept_encoding.lower().split(","):
        name, *params = (part.strip() for part in item.split(";"))
        q = next((p.removeprefix("q=") for p in params if p.startswith("q=")), "1")
        try:
            weight = float(q)
        except ValueError:
            continue
        if name in ("gzip", "*") and weight > 0:
            return True
    return False


#: ReDoc's bundle draws its "powered by" logo from Redocly's CDN; ours points it at a local file.
REDOC_CDN_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
REDOC_LOCAL_LOGO = b"/static/docs/favicon.png"


def _redoc_js() -> bytes:
    return (DOCS_ASSETS_DIR / "redoc.standalone.js").read_bytes().replace(REDOC_CDN_LOGO, REDOC_LOCAL_LOGO)


def mount_assets(app: FastAPI) -> None:
    """`/static/*` (the dashboard's CSS/JS) and plotly.js at `PLOTLY_URL` (after the docs' routes).

    plotly.js goes out pre-compressed (the GZip middleware passes a response that already
    has a Content-Encoding), with an ETag for a revalidation that costs a 304.
    """

    @app.get(PLOTLY_URL, include_in_schema=False)
    def plotly_js(request: Request) -> Response:
        bundle = _plotly_bundle()
        headers = {"Cache-Control": IMMUTABLE, "ETag": bundle.etag, "Vary": "Accept-Encoding"}
        if request.headers.get("if-none-match") == bundle.etag:
            return Response(status_code=304, headers=headers)
        if accepts_gzip(request.headers.get("accept-encoding", "")):
            return Response(
                bundle.gz, media_type="text/javascript", headers={**headers, "Content-Encoding": "gzip"}
            )
        return Response(bundle.raw, media_type="text/javascript", headers=headers)

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
