"""`GET /forecast/quality`: the latest backtest of the site baselines, as `gridflex forecast-quality` wrote it.

Why a file and not a backtest on request: a meaningful backtest takes tens of seconds to
minutes (a year: much longer), which no API call should. The command writes its JSON;
`--publish` copies it to `forecast_quality.json` beside the controller's store file
(`store.path`, default `state/`), where this route reads it. The file is parsed again
only when it changes (mtime, size). No file: 404 saying how to make one; a file that is
not a backtest result: 503 naming the file and the reason.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException

if TYPE_CHECKING:
    from cloud_controller.service import CloudController

__all__ = ["FORECAST_QUALITY_FILE", "RESULT_KIND", "forecast_quality_router", "quality_path", "read_quality"]

#: the file name the route reads beside the store file
FORECAST_QUALITY_FILE = "forecast_quality.json"
#: the `kind` a backtest result carries (cloud_controller.forecast.quality_backtest)
RESULT_KIND = "gridflex.forecast_quality"


def quality_path(store_path: Path) -> Path:
    """Where the controller whose store file is `store_path` looks for the published backtest."""
    return Path(store_path).parent / FORECAST_QUALITY_FILE


def read_quality(path: Path) -> dict[str, Any]:
    """The published result at `path`; FileNotFoundError if absent, ValueError (with the reason) if not one."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or data.get("kind") != RESULT_KIND:
        raise ValueError(f"not a forecast-quality result (its 'kind' is not {RESULT_KIND!r})")
    if not isinstance(data.get("buckets"), list):
        raise ValueError("key 'buckets': missing or not a list")
    return data


def forecast_quality_router(controller: CloudController) -> APIRouter:
    """`GET /forecast/quality` for `controller` (reads beside its store file)."""
    router = APIRouter(tags=["forecast"])
    path = quality_path(controller.config.store.path)
    cache: dict[str, Any] = {}
    lock = threading.Lock()

    @router.get("/forecast/quality")
    def forecast_quality() -> dict[str, Any]:
        """The latest backtest of the site baselines (docs/forecast-quality.md).

        Per horizon bucket: pinball loss per quantile, p10–p90 coverage (ideal 80 %), MAE/RMSE
        of p50 and skill vs persistence.
        """
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise HTTPException(
                404,
                f"no forecast-quality result at {path}: run `gridflex forecast-quality --publish {path}`",
            ) from None
        key = (stat.st_mtime_ns, stat.st_size)
        with lock:
            if cache.get("key") != key:
                try:
                    cache["data"] = read_quality(path)
                except (ValueError, OSError) as exc:
                    cache.clear()
                    raise HTTPException(503, f"{path}: {exc}") from None
                cache["key"] = key
            data: dict[str, Any] = cache["data"]
        return data

    return router
