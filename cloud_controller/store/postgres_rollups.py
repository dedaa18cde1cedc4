"""The PostgreSQL store's ISP rollups (`rollups.py`): migration 6's table and backfill, the write hook, the read.

The same rows as SQLite's (one per site, point and UTC day; n, total and last_ts as
little-endian bytea), so one pure module decides what they hold. Writers of a site hold
its advisory lock (`postgres_batch.LOCK_SITES`) for the whole transaction, and rows are
per site, so the read-modify-write of a site's rows never races another worker's. The
write hook costs two statements per batch (read the touched rows, upsert them) and one
more per late or out-of-order ISP (its recomputation from the samples).

Sums: PostgreSQL's own `sum` in the backfill and Python's in-order additions on write;
the raw path's `avg` rounds in its own order, so the two agree within 1e-12, not bit for bit.
TimescaleDB's continuous aggregates would be the other way; the extension is not installed
here (migration 1 notes whether `samples` became a hypertable), so the table is plain.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import psycopg
from psycopg.rows import TupleRow

from cloud_controller.store.rollups import (
    ISP_S,
    DayRow,
    Fresh,
    RollupKey,
    SeriesKey,
    apply_fresh,
    day_rows,
    pack,
    touched_keys,
    unpack,
)

__all__ = ["CREATE", "backfill", "read_rows", "update"]

Cursor = psycopg.Cursor[TupleRow]

CREATE = """
CREATE TABLE isp_rollups (
    site text NOT NULL, asset text NOT NULL, point text NOT NULL, day integer NOT NULL,
    n bytea NOT NULL, total bytea NOT NULL, last_ts bytea NOT NULL,
    PRIMARY KEY (site, asset, point, day)
)
"""
UPSERT = """
INSERT INTO isp_rollups (site, asset, point, day, n, total, last_ts)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[], %s::bytea[], %s::bytea[], %s::bytea[])
ON CONFLICT (site, asset, point, day) DO UPDATE SET n = excluded.n, total = excluded.total, last_ts = excluded.last_ts
"""
SELECT_KEYS = """
SELECT r.site, r.asset, r.point, r.day, r.n, r.total, r.last_ts
FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[]) AS k(site, asset, point, day)
JOIN isp_rollups r USING (site, asset, point, day)
"""
ISP_VALUES = """
SELECT extract(epoch FROM ts)::float8, value FROM samples
WHERE site = %s AND asset = %s AND point = %s AND ts >= to_timestamp(%s) AND ts < to_timestamp(%s)
  AND value IS NOT NULL AND quality = 'good'
ORDER BY ts, seq
"""
BACKFILL = """
SELECT floor(extract(epoch FROM ts) / 900)::bigint AS isp, count(*), sum(value), max(extract(epoch FROM ts))::float8
FROM samples WHERE site = %s AND asset = %s AND point = %s AND value IS NOT NULL AND quality = 'good'
GROUP BY isp
"""
#: `read_bucket_means` on the rollups: (0-based site position, day, n, total) of every row in the window.
READ = """
SELECT (s.i - 1)::int, r.day, r.n, r.total
FROM unnest(%(sites)s::text[]) WITH ORDINALITY AS s(site, i)
JOIN isp_rollups r ON r.site = s.site
WHERE r.asset = %(asset)s AND r.point = %(point)s AND r.day >= %(d0)s AND r.day <= %(d1)s
"""


def _upsert(cur: Cursor, rows: dict[RollupKey, DayRow]) -> None:
    if not rows:
        return
    keys = list(rows)
    packed = [pack(rows[k]) for k in keys]
    cur.execute(
        UPSERT,
        (
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            [k[3] for k in keys],
            [p[0] for p in packed],
            [p[1] for p in packed],
            [p[2] for p in packed],
        ),
    )


def backfill(cur: Cursor) -> int:
    """Fill the rollups from the stored samples (migration 6, in its transaction); rows written.

    One grouped statement per series (the `samples_series` index), packed into day rows.
    """
    cur.execute("SELECT DISTINCT site, asset, point FROM samples")
    written = 0
    for site, asset, point in cur.fetchall():
        cur.execute(BACKFILL, (site, asset, point))
        got = cur.fetchall()
        if not got:
            continue
        arr = np.array(got, dtype=np.float64)
        days = day_rows(arr[:, 0].astype(np.int64), arr[:, 1], arr[:, 2], arr[:, 3])
        _upsert(cur, {(str(site), str(asset), str(point), day): row for day, row in days.items()})
        written += len(days)
    return written


def _recompute(cur: Cursor, series: SeriesKey, isp: int) -> tuple[int, float, float]:
    cur.execute(ISP_VALUES, (*series, isp * ISP_S, (isp + 1) * ISP_S))
    got = cur.fetchall()
    total = 0.0
    for _, v in got:
        total += float(v)
    return len(got), total, (float(got[-1][0]) if got else 0.0)


def update(cur: Cursor, fresh: Sequence[Fresh]) -> None:
    """Fold the samples this transaction inserted (good, non-null) into their rollup rows."""
    if not fresh:
        return
    keys = sorted(touched_keys(fresh))
    cur.execute(
        SELECT_KEYS,
        ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [k[3] for k in keys]),
    )
    rows: dict[RollupKey, DayRow] = {
        (str(a), str(b), str(c), int(d)): unpack(n, t, lt) for a, b, c, d, n, t, lt in cur.fetchall()
    }
    apply_fresh(rows, fresh, lambda series, isp: _recompute(cur, series, isp))
    _upsert(cur, {k: rows[k] for k in keys})


def read_rows(
    cur: Cursor, sites: Sequence[str], asset: str, point: str, first_day: int, last_day: int
) -> list[tuple[int, int, bytes, bytes]]:
    """(site position, day, n, total) of the sites' rows from first_day to last_day inclusive."""
    args = {"sites": list(sites), "asset": asset, "point": point, "d0": first_day, "d1": last_day}
    cur.execute(READ, args, binary=True)
    return [(int(i), int(d), bytes(n), bytes(t)) for i, d, n, t in cur.fetchall()]
