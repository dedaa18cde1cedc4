"""The statements of `PostgresStore.write_batches`: many messages of many sites in five round trips (+2 for rollups).

Why each has its shape:
- `LOCK_SITES` takes every site's `pg_advisory_xact_lock` in one statement, in the
  order of the lock keys (`hashtext`): two workers whose batches share sites take the
  shared ones in the same order, so they queue instead of deadlocking (a hash shared by
  two sites is one lock, taken once).
- `INSERT_SAMPLES_MANY` keys first (`sample_keys ON CONFLICT DO NOTHING`), rows only for
  the keys that were new, and answers which rows (`j`, 1-based in the batch) were new:
  each message's count, and what the ISP rollups add (`postgres_rollups.update`); a
  data-modifying CTE runs to completion whether read or not.
- `ADVANCE_MANY` finds each site's highest contiguous seq above its stored watermark in
  SQL (`seq - row_number()` is constant along a run without holes), reading at most
  100,000 keys per site like `PostgresStore._advance`; a site that did not advance
  returns no row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from cloud_controller.store import postgres_rollups
from cloud_controller.store.batch import SiteSamples, newest_good
from cloud_controller.store.postgres_schema import LOCK_CLASS, Cursor
from cloud_controller.store.results import WriteResult
from protocols.messages import Sample

__all__ = ["write_batches"]

LOCK_SITES = """
SELECT pg_advisory_xact_lock(%(cls)s, h)
FROM (SELECT DISTINCT hashtext(s) AS h FROM unnest(%(sites)s::text[]) AS s ORDER BY h) AS keys
"""
INSERT_SAMPLES_MANY = """
WITH batch AS (
    SELECT * FROM unnest(%(msg)b::int[], %(site)b::text[], %(seq)b::bigint[], %(asset)b::text[],
                         %(point)b::text[], %(ts)b::timestamptz[], %(value)b::float8[], %(unit)b::text[],
                         %(quality)b::text[]) WITH ORDINALITY
        AS b(msg, site, seq, asset, point, ts, value, unit, quality, j)
), fresh AS (
    INSERT INTO sample_keys (site, seq) SELECT site, seq FROM batch ON CONFLICT DO NOTHING RETURNING site, seq
), rows AS (
    INSERT INTO samples (site, seq, asset, point, ts, value, unit, quality)
    SELECT b.site, b.seq, b.asset, b.point, b.ts, b.value, b.unit, b.quality FROM batch b JOIN fresh USING (site, seq)
)
SELECT b.j FROM batch b JOIN fresh USING (site, seq)
"""
UPSERT_LATEST_MANY = """
INSERT INTO latest AS l (site, asset, point, ts, value)
SELECT * FROM unnest(%(site)b::text[], %(asset)b::text[], %(point)b::text[], %(ts)b::timestamptz[],
                     %(value)b::float8[])
ON CONFLICT (site, asset, point) DO UPDATE SET ts = excluded.ts, value = excluded.value WHERE excluded.ts >= l.ts
"""
ADVANCE_MANY = """
SELECT w.site, max(k.seq)
FROM unnest(%(site)s::text[], %(wm)s::bigint[]) AS w(site, wm)
CROSS JOIN LATERAL (
    SELECT seq, seq - row_number() OVER (ORDER BY seq) AS run
    FROM (SELECT seq FROM sample_keys WHERE site = w.site AND seq > w.wm ORDER BY seq LIMIT 100000) AS above
) AS k
WHERE k.run = w.wm
GROUP BY w.site
"""
PUT_WATERMARKS = """
INSERT INTO watermark (site, seq) SELECT * FROM unnest(%(site)s::text[], %(seq)s::bigint[])
ON CONFLICT (site) DO UPDATE SET seq = excluded.seq
"""


def _ts(when: datetime) -> datetime:
    return when.astimezone(UTC)


def write_batches(
    cur: Cursor, batches: Sequence[SiteSamples], *, keep_rollups: bool = True
) -> list[WriteResult]:
    """Several messages (of one or many sites) on `cur`'s open transaction, in at most seven statements.

    One result per message, in order. A seq sent twice in the batch counts for the first
    message that holds it (a duplicate of the later).
    """
    msg: list[int] = []
    rows: list[tuple[str, Sample]] = []
    owner: set[tuple[str, int]] = set()
    for i, (site, samples) in enumerate(batches):
        for s in samples:
            if (site, s.seq) not in owner:
                owner.add((site, s.seq))
                msg.append(i)
                rows.append((site, s))
    newest = newest_good(batches)
    sites = sorted({site for site, _ in batches})
    inserted = [0] * len(batches)
    cur.execute(LOCK_SITES, {"cls": LOCK_CLASS, "sites": sites})
    cur.execute("SELECT site, seq FROM watermark WHERE site = ANY(%s)", (sites,))
    previous = {site: -1 for site in sites} | {str(a): int(b) for a, b in cur.fetchall()}
    if rows:
        cur.execute(
            INSERT_SAMPLES_MANY,
            {
                "msg": msg,
                "site": [site for site, _ in rows],
                "seq": [s.seq for _, s in rows],
                "asset": [s.asset for _, s in rows],
                "point": [s.point for _, s in rows],
                "ts": [_ts(s.ts) for _, s in rows],
                "value": [s.value for _, s in rows],
                "unit": [s.unit for _, s in rows],
                "quality": [s.quality for _, s in rows],
            },
        )
        fresh = sorted(int(j) - 1 for (j,) in cur.fetchall())
        for j in fresh:
            inserted[msg[j]] += 1
        if keep_rollups:
            good = (rows[j] for j in fresh)
            postgres_rollups.update(
                cur,
                [
                    (site, s.asset, s.point, s.ts.timestamp(), float(s.value))
                    for site, s in good
                    if s.value is not None and s.quality == "good"
                ],
            )
    if newest:
        cur.execute(
            UPSERT_LATEST_MANY,
            {
                "site": [k[0] for k in newest],
                "asset": [k[1] for k in newest],
                "point": [k[2] for k in newest],
                "ts": [_ts(ts) for ts, _ in newest.values()],
                "value": [v for _, v in newest.values()],
            },
        )
    cur.execute(ADVANCE_MANY, {"site": sites, "wm": [previous[s] for s in sites]})
    after = previous | {str(a): int(b) for a, b in cur.fetchall()}
    moved = [s for s in sites if after[s] != previous[s]]
    if moved:
        cur.execute(PUT_WATERMARKS, {"site": moved, "seq": [after[s] for s in moved]})
    return [
        WriteResult(n, len(samples) - n, after[site], previous[site])
        for (site, samples), n in zip(batches, inserted, strict=True)
    ]
