"""Site history read back from InfluxDB by InfluxQL, in the SQLite store's shape.

Why InfluxQL on `/query` and not Flux: it is the one read API that InfluxDB 1.x serves
natively and 2.x/3.x serve through their v1 compatibility (a database → bucket mapping),
so one reader covers every InfluxDB a DSO may run. The query is built by a pure function
(`history_query`) from validated inputs; every string literal is escaped, every
identifier quoted, so a site or point name cannot change the query. The reply is parsed
strictly: an `error` in the reply or an HTTP error is an `InfluxHistoryError` naming it,
never an empty history.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from cloud_controller.store.influx import MEASUREMENT
from protocols.assets import PointKey

__all__ = ["InfluxHistory", "InfluxHistoryError", "history_query", "influxql_string"]


class InfluxHistoryError(RuntimeError):
    """InfluxDB did not answer a history query (unreachable, HTTP error, or an error in its reply)."""


def influxql_string(value: str) -> str:
    """`value` as an InfluxQL single-quoted string literal (backslash and quote escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ms(t: datetime) -> int:
    if t.tzinfo is None:
        raise ValueError("history times need a time zone")
    return int(t.timestamp() * 1000)


def history_query(
    site: str, start: datetime, end: datetime, points: Sequence[PointKey] | None, *, max_rows: int
) -> str:
    """InfluxQL for good samples of `site` in [start, end), one series per asset/point, oldest first."""
    where = [
        f'"site" = {influxql_string(site)}',
        f'"quality" = {influxql_string("good")}',
        f"time >= {_ms(start)}ms",
        f"time < {_ms(end)}ms",
    ]
    if points:
        terms = " OR ".join(
            f'("asset" = {influxql_string(k.asset)} AND "point" = {influxql_string(k.point)})' for k in points
        )
        where.append(f"({terms})")
    return (
        f'SELECT "value" FROM "{MEASUREMENT}" WHERE {" AND ".join(where)} '
        f'GROUP BY "asset", "point" ORDER BY time ASC LIMIT {int(max_rows)}'
    )


def parse_history_reply(
    body: Any, points: Sequence[PointKey] | None
) -> dict[PointKey, list[tuple[datetime, float]]]:
    """The `/query?epoch=ms` JSON reply as {PointKey: [(ts, value), ...]}; an error in it raises."""
    out: dict[PointKey, list[tuple[datetime, float]]] = {key: [] for key in points or ()}
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        raise InfluxHistoryError(f"unexpected reply from InfluxDB: {str(body)[:200]}")
    if "error" in body:
        raise InfluxHistoryError(f"InfluxDB: {body['error']}")
    for result in body["results"]:
        if "error" in result:
            raise InfluxHistoryError(f"InfluxDB: {result['error']}")
        for series in result.get("series", []):
            tags = series.get("tags", {})
            key = PointKey(str(tags.get("asset", "")), str(tags.get("point", "")))
            cols = series.get("columns", [])
            if cols != ["time", "value"]:
                raise InfluxHistoryError(f"unexpected columns {cols} for {key}")
            rows = out.setdefault(key, [])
            for ts_ms, value in series.get("values", []):
                if value is None:
                    continue
                rows.append((datetime.fromtimestamp(ts_ms / 1000, UTC), float(value)))
    return out


class InfluxHistory:
    """`read_history` like `SqliteStore.read_history`, answered by InfluxDB's `/query`."""

    def __init__(self, url: str, *, database: str, token: str = "", timeout_s: float = 10.0) -> None:
        headers = {"Authorization": f"Token {token}"} if token else {}
        self.url, self.database = url, database
        self._http = httpx.Client(base_url=url, headers=headers, timeout=timeout_s)

    def read_history(
        self,
        site: str,
        start: datetime,
        end: datetime,
        points: Sequence[PointKey] | None = None,
        *,
        max_rows: int = 200_000,
    ) -> dict[PointKey, list[tuple[datetime, float]]]:
        """Good, non-null values of several points of one site in [start, end), oldest first.

        `max_rows` bounds each point's series (InfluxQL's LIMIT is per series).
        """
        q = history_query(site, start, end, points, max_rows=max_rows)
        try:
            r = self._http.get("/query", params={"db": self.database, "q": q, "epoch": "ms"})
        except httpx.HTTPError as exc:
            raise InfluxHistoryError(f"InfluxDB at {self.url} unreachable: {exc!r}") from exc
        if r.status_code != 200:
            raise InfluxHistoryError(f"InfluxDB at {self.url}: HTTP {r.status_code}: {r.text.strip()[:200]}")
        return parse_history_reply(r.json(), points)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()
