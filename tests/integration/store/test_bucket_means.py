"""The array read (`read_bucket_means`) against the per-sample path it replaced, on SQLite and PostgreSQL.

The per-sample path is what the settlement ran before: `read_series` per site, then
`isp_means`. A small fleet-month with gaps (a missing ISP, a missing day, a bad and a null
sample, another point, samples on the window's edges) must give the same numbers through
the array read, through `store_metering` (one order's baseline and actual) and through
`metered_month_kw` (the batch settlement's input).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cloud_controller.market.batch import isp_means
from cloud_controller.market.metering import metered, metered_month_kw, store_metering
from cloud_controller.store import SqliteStore, Store
from cloud_controller.store.buckets import bucket_count, series_bucket_means
from cloud_controller.store.postgres import PostgresStore
from gridflex.ops.postgres import LoopbackPostgres
from protocols.assets import Points
from protocols.messages import Quality, Sample

pytestmark = pytest.mark.integration

FIRST = date(2030, 1, 1)  # a Tuesday; 1 Jan is no holiday here (none are configured)
T0 = datetime(2030, 1, 1, tzinfo=UTC)
DAYS = 23  # 21 days of history, the order's day, one more
SITES = ("a", "b", "c")
P = Points.METER_P_KW
ORDER_DAY = T0 + timedelta(days=21)
GAP_ISP = T0 + timedelta(days=20, minutes=15 * 70)  # site b: none in this ISP (Mon 21 Jan, a baseline day)
GAP_DAY = 5  # site c: no sample on this day (Sun 6 Jan, outside the order day's baseline)


def _kw(site: int, k: int, j: int) -> float:
    """A value that differs per site, ISP and sample, and is not round."""
    return 5.0 + ((site * 7919 + k * 104729 + j * 1299709) % 4500) / 100.0 + 1.0 / 3.0


@cache
def _samples(site: int) -> list[Sample]:
    out: list[Sample] = []

    def add(ts: datetime, value: float | None, quality: Quality = "good", point: str = P.point) -> None:
        out.append(
            Sample(seq=len(out), asset=P.asset, point=point, value=value, unit="kW", ts=ts, quality=quality)
        )

    for k in range(DAYS * 96):
        isp = T0 + timedelta(minutes=15 * k)
        if (SITES[site] == "b" and isp == GAP_ISP) or (SITES[site] == "c" and k // 96 == GAP_DAY):
            continue
        for j, offset_s in enumerate((0.0, 299.5, 899.999)[: 1 + (k + site) % 3]):  # 1-3 samples, edges
            add(isp + timedelta(seconds=offset_s), _kw(site, k, j))
        if k % 97 == 0:
            add(isp + timedelta(seconds=450), 1e6, quality="bad")  # excluded
            add(isp + timedelta(seconds=451), None, quality="stale")  # excluded
            add(isp + timedelta(seconds=452), -1e6, point="q_kvar")  # another point
    return out


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The small fleet-month written to a store of each kind (Postgres: the session's schema, emptied)."""
    st: Store
    if request.param == "sqlite":
        st = SqliteStore(tmp_path / "cloud.sqlite")
    else:
        pg: LoopbackPostgres = request.getfixturevalue("pg_server")
        st = PostgresStore(request.getfixturevalue("pg_dsn"), password=pg.password_file.read_text().strip())
    try:
        for i, site in enumerate(SITES):
            st.write_samples(site, _samples(i))
        yield st
    finally:
        st.close()


def _old_means(
    store: Store, sites: Sequence[str], start: datetime, end: datetime
) -> list[dict[datetime, float]]:
    return [isp_means(store.read_series(s, P.asset, P.point, start, end)) for s in sites]


def _close(a: Any, b: Any, store: Store) -> bool:
    """SQLite sums in the per-sample path's order (equal floats); PostgreSQL's avg may round in its own."""
    if isinstance(store, SqliteStore):
        return bool(np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True))
    return bool(np.allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=0.0, equal_nan=True))


def test_array_read_equals_the_per_sample_path_with_gaps(store: Store) -> None:
    start, end = T0, T0 + timedelta(days=DAYS)
    got = store.read_bucket_means([*SITES, "nobody"], P, start, end, 900)
    assert got.shape == (4, DAYS * 96)
    n = bucket_count(start, end, 900)
    want = [
        series_bucket_means(store.read_series(s, P.asset, P.point, start, end), start, 900, n) for s in SITES
    ]
    assert _close(got[:3], np.stack(want), store)
    # and as isp_means keys them: the same ISPs have a value, with the same value
    for row, old in zip(got[:3], _old_means(store, SITES, start, end), strict=True):
        have = {
            T0 + timedelta(minutes=15 * k): float(row[k]) for k in np.flatnonzero(~np.isnan(row)).tolist()
        }
        assert have.keys() == old.keys()
        assert _close(list(have.values()), list(old.values()), store)
    assert np.isnan(got[1, 20 * 96 + 70]) and np.isnan(got[2, GAP_DAY * 96 : (GAP_DAY + 1) * 96]).all()
    assert np.isnan(got[3]).all()  # a site without samples: NaN, never 0
    assert int(np.isnan(got[:3]).sum()) == 1 + 96
    # ISP 0 of site a has one sample (k + site = 0): its value, not diluted by the bad/null/other-point rows
    assert got[0, 0] == pytest.approx(_kw(0, 0, 0))
    # ISP 1 of site a: 2 samples, at 0 s and 299.5 s
    assert got[0, 1] == pytest.approx((_kw(0, 1, 0) + _kw(0, 1, 1)) / 2)


def test_window_edges_and_a_step_not_dividing_the_window(store: Store) -> None:
    start = T0 + timedelta(minutes=15)  # ISP 1 of site a: samples at 0 s and 299.5 s
    end = start + timedelta(seconds=1000)  # buckets [0, 900) and [900, 1000): the 2nd is cut short
    got = store.read_bucket_means(["a"], P, start, end, 900)
    assert got.shape == (1, 2)
    assert got[0, 0] == pytest.approx((_kw(0, 1, 0) + _kw(0, 1, 1)) / 2)
    assert got[0, 1] == pytest.approx(_kw(0, 2, 0))  # ISP 2 starts at 900 s; its 299.5 s sample is past end
    assert store.read_bucket_means([], P, start, end, 900).shape == (0, 2)
    with pytest.raises(ValueError, match="step_s"):
        store.read_bucket_means(["a"], P, start, end, 0)
    with pytest.raises(ValueError, match="not after"):
        store.read_bucket_means(["a"], P, end, start, 900)


def test_store_metering_gives_the_per_sample_paths_numbers(store: Store) -> None:
    isps = [ORDER_DAY + timedelta(minutes=15 * k) for k in range(68, 80)]
    start, end = ORDER_DAY - timedelta(days=21), isps[-1] + timedelta(minutes=15)
    meter = store_metering(store)
    for sites in (["a"], ["a", "c"]):
        old = metered(dict(zip(sites, _old_means(store, sites, start, end), strict=True)), isps, "nodes_5wd")
        new = meter(sites, isps, "nodes_5wd")
        for got, want in zip(new, old, strict=True):
            assert got.keys() == want.keys() == set(isps)
            assert _close(list(got.values()), list(want.values()), store)
    # site b misses ISP 70 of the day before the order, a baseline day: both paths refuse it alike
    gap = [GAP_ISP + timedelta(days=1)]  # the same ISP on the order day
    old_err = new_err = ""
    try:
        metered(
            dict(zip(["a", "b"], _old_means(store, ["a", "b"], start, end), strict=True)), gap, "nodes_5wd"
        )
    except ValueError as exc:
        old_err = str(exc)
    try:
        meter(["a", "b"], gap, "nodes_5wd")
    except ValueError as exc:
        new_err = str(exc)
    assert old_err and new_err == old_err


def test_metered_month_is_settle_months_input(store: Store) -> None:
    got = metered_month_kw(store, SITES, FIRST, DAYS)
    assert got.shape == (3, DAYS, 96)
    end = T0 + timedelta(days=DAYS)
    want = np.stack(
        [
            series_bucket_means(store.read_series(s, P.asset, P.point, T0, end), T0, 900, DAYS * 96)
            for s in SITES
        ]
    ).reshape(3, DAYS, 96)
    assert _close(got, want, store)
    assert np.isnan(got[2, GAP_DAY]).all() and not np.isnan(got[2, GAP_DAY + 1]).any()
