"""The endpoints' array metering settles every order as the per-order path does, field for field.

One SQLite store of six sites metered 16:00-19:00 (two samples per ISP, seeded) from
2029-11-26 to 2030-01-24, and two market stores with the same twelve orders: every
baseline kind (NODES 5 working days, high 4 of 5, the FSP's prognosis, our forecast),
orders of one site, of several (one named twice), over two days, on a weekend, after a
holiday, and the orders that cannot be settled: an FSP without a prognosis, a frozen
forecast without an ISP, an actual missing at s4, a hole in s5's history, no sites, and
a baseline day older than its own 21-day read (the holidays of late December) while
another order's read covers that day. The reference is the per-order path
(`store_metering`, no prefetch); the array path is `ArrayMetering` with the book's prefetch.
Settlements are compared as dumps (every field; equal floats, not just within 1e-9: a
stored settlement must be found unchanged, never revised by a rounding).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cloud_controller import SqliteStore
from cloud_controller.market import batch_orders
from cloud_controller.market.batch_orders import ArrayMetering, array_answers, read_window
from cloud_controller.market.metering import metered, store_metering
from cloud_controller.market.settling import MeterAsk, settle_due, settle_period
from cloud_controller.market.store import MarketStore
from cloud_controller.store.buckets import FloatArray
from protocols.assets import PointKey, Points
from protocols.market import (
    Baseline,
    MarketIsp,
    MarketOffer,
    MarketOption,
    MarketOrder,
    MarketPrognosis,
    PrognosisIsp,
)
from protocols.messages import Sample

FIRST = date(2029, 11, 26)
LAST = date(2030, 1, 24)
SITES = [f"s{k}" for k in range(6)]
#: New Year, a Monday in January, and late December (which pushes a baseline past its read)
HOLIDAYS = [date(2030, 1, 1), date(2030, 1, 14)] + [date(2029, 12, d) for d in range(17, 32)]
NOW = datetime(2030, 1, 25, tzinfo=UTC)
PENALTY = 1.5
ISP = timedelta(minutes=15)


def at(day: str, hh: int, mm: int = 0) -> datetime:
    return datetime.fromisoformat(f"{day}T{hh:02d}:{mm:02d}:00+00:00")


def run(start: datetime, n: int) -> list[datetime]:
    return [start + ISP * k for k in range(n)]


#: order id -> (sites, baseline, ISP starts); each order is its own offer, with its own id
ORDERS: dict[str, tuple[list[str], Baseline, list[datetime]]] = {
    "n-one": (["s0"], "nodes_5wd", run(at("2030-01-15", 17), 4)),  # the day after a holiday
    "n-twice": (["s1", "s2", "s1"], "nodes_5wd", run(at("2030-01-16", 17), 8)),
    "n-two-days": (["s0"], "nodes_5wd", run(at("2030-01-16", 18, 30), 2) + run(at("2030-01-17", 17), 2)),
    "h-monday": (["s2", "s3"], "high_4_of_5", run(at("2030-01-21", 17), 4)),
    "p-given": (["s3"], "fsp_prognosis", run(at("2030-01-22", 17), 4)),
    "p-none": (["s3"], "fsp_prognosis", run(at("2030-01-22", 18), 4)),
    "f-frozen": (["s0", "s1"], "our_forecast", run(at("2030-01-23", 17), 4)),
    "f-short": (["s1"], "our_forecast", run(at("2030-01-23", 18), 4)),
    "gap-history": (["s5"], "nodes_5wd", run(at("2030-01-11", 17), 2)),
    "gap-actual": (["s4", "s0"], "nodes_5wd", run(at("2030-01-20", 17), 4)),  # a Sunday
    "no-sites": ([], "nodes_5wd", run(at("2030-01-15", 18), 2)),
    "far-back": (["s0"], "nodes_5wd", run(at("2030-01-02", 17), 4)),
    "early": (["s2"], "nodes_5wd", run(at("2029-12-20", 17), 4)),  # its read covers far-back's day
}
REASONS = {
    "p-none": "baseline fsp_prognosis: no prognosis for offer 'off-p-none'",
    "f-short": "baseline our_forecast: no value at 2030-01-23T18:45:00+00:00",
    "gap-history": "history has no value at 2030-01-10T17:00:00+00:00 (baseline for 2030-01-11T17:00:00+00:00)",
    "gap-actual": "no metered power at 2030-01-20T17:30:00+00:00 for site(s) s4",
    "no-sites": "its offer names no sites to meter",
    "far-back": "history has no value at 2029-12-11T17:00:00+00:00 (baseline for 2030-01-02T17:00:00+00:00)",
}


def _holes(site: str, t: datetime) -> bool:
    return (site == "s5" and t == at("2030-01-10", 17)) or (site == "s4" and t == at("2030-01-20", 17, 30))


@pytest.fixture
def meter_store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "meter.sqlite")
    rng = np.random.default_rng(21)
    p = Points.METER_P_KW
    days = (LAST - FIRST).days + 1
    for site in SITES:
        samples: list[Sample] = []
        for d in range(days):
            for start in run(datetime.combine(FIRST + timedelta(days=d), at("2030-01-01", 16).timetz()), 12):
                if _holes(site, start):
                    continue
                for minute in (2, 9):
                    v = float(rng.uniform(5.0, 50.0))
                    t = start + timedelta(minutes=minute)
                    samples.append(
                        Sample(seq=len(samples), asset=p.asset, point=p.point, value=v, unit="kW", ts=t)
                    )
        store.write_samples(site, samples)
    yield store
    store.close()


def _market(path: Path) -> MarketStore:
    market = MarketStore(path)
    orders = []
    for k, (oid, (sites, kind, starts)) in enumerate(ORDERS.items()):
        price = 0.5 + 0.25 * k
        kw = [3.0 + k + j for j in range(len(starts))]
        isps = [MarketIsp(start=t, kw=v) for t, v in zip(starts, kw, strict=True)]
        ts = starts[0] - timedelta(days=1)
        offer = MarketOffer(
            offer_id=f"off-{oid}",
            fsp="fsp-a",
            congestion_point="cp",
            ts=ts,
            expires=starts[0],
            options=[MarketOption(option_id="o1", isps=isps, price_eur_per_kwh=price)],
            sites=sites,
            baseline=kind,
        )
        market.put_offer(offer, "ordered", ts.timestamp())
        orders.append(
            MarketOrder(
                order_id=oid,
                clearing_id="c1",
                offer_id=offer.offer_id,
                option_id="o1",
                fsp="fsp-a",
                congestion_point="cp",
                ts=ts,
                factor=1.0,
                isps=isps,
                price_eur_per_kwh=price,
                price_eur=sum(kw) * 0.25 * price,
                baseline=kind,
            )
        )
        if oid == "p-given":
            prog = [PrognosisIsp(start=t, kw=40.0 + j) for j, t in enumerate(starts)]
            market.put_prognosis(MarketPrognosis(offer_id=offer.offer_id, fsp="fsp-a", ts=ts, isps=prog), 0.0)
        if oid in ("f-frozen", "f-short"):
            frozen = {t.isoformat(): 60.0 - j for j, t in enumerate(starts) if oid == "f-frozen" or j < 3}
            market.freeze_forecast(offer.offer_id, ts.timestamp(), frozen)
    market.put_clearing("c1", 0.0, {}, orders)
    return market


class Counting:
    """The meter store, counting its array reads (the direct path reads once per order)."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.reads = 0

    def read_bucket_means(
        self, sites: Sequence[str], point: PointKey, start: datetime, end: datetime, step_s: float, **kw: Any
    ) -> FloatArray:
        self.reads += 1
        return self.store.read_bucket_means(sites, point, start, end, step_s, **kw)


def _dumps(settlements: Sequence[Any]) -> list[dict[str, Any]]:
    return [s.model_dump(mode="json", exclude={"ts"}) for s in settlements]


def test_settle_due_gives_every_field_and_failure_of_the_per_order_path(
    meter_store: SqliteStore, tmp_path: Path
) -> None:
    ref_done, ref_failed = settle_due(
        _market(tmp_path / "a.sqlite"), NOW, store_metering(meter_store, holidays=HOLIDAYS), PENALTY
    )
    counting = Counting(meter_store)
    meter = ArrayMetering(counting, holidays=HOLIDAYS)  # type: ignore[arg-type]
    done, failed = settle_due(_market(tmp_path / "b.sqlite"), NOW, meter, PENALTY, prefetch=meter.prepare)
    assert counting.reads == 1  # every due order's sites in one read, no order read again
    assert {f["order_id"]: f["reason"] for f in failed} == REASONS
    assert failed == ref_failed
    assert [s.order_id for s in done] == [o for o in ORDERS if o not in REASONS]
    assert _dumps(done) == _dumps(ref_done)
    kinds = {s.order_id: s.baseline for s in done}
    assert set(kinds.values()) == {"nodes_5wd", "high_4_of_5", "fsp_prognosis", "our_forecast"}
    for s in done:
        assert s.net_eur == pytest.approx(s.price_eur - s.penalty_eur, abs=1e-9)
        assert s.penalty_eur == pytest.approx(PENALTY * s.deficiency_kwh * _price(s.order_id), abs=1e-9)


def _price(order_id: str) -> float:
    return 0.5 + 0.25 * list(ORDERS).index(order_id)


def test_settle_period_revises_only_what_late_data_changed_as_the_per_order_path(
    meter_store: SqliteStore, tmp_path: Path
) -> None:
    start, end = datetime(2029, 12, 1, tzinfo=UTC), datetime(2030, 2, 1, tzinfo=UTC)
    direct = store_metering(meter_store, holidays=HOLIDAYS)
    ref_store, arr_store = _market(tmp_path / "a.sqlite"), _market(tmp_path / "b.sqlite")
    first = settle_period(ref_store, start, end, NOW, direct, PENALTY)  # stored by the per-order path
    settle_period(arr_store, start, end, NOW, direct, PENALTY)
    assert len(first.new) == len(ORDERS) - len(REASONS) and len(first.failed) == len(REASONS)
    meter = ArrayMetering(meter_store, holidays=HOLIDAYS)
    again = settle_period(arr_store, start, end, NOW, meter, PENALTY, prefetch=meter.prepare)
    assert again.unchanged == first.new and again.new == again.revised == []  # no revision by rounding
    assert again.failed == first.failed
    p = Points.METER_P_KW
    late = Sample(seq=99_999, asset=p.asset, point=p.point, value=0.0, unit="kW", ts=at("2030-01-15", 17, 5))
    meter_store.write_samples("s0", [late])
    ref = settle_period(ref_store, start, end, NOW, direct, PENALTY)
    meter = ArrayMetering(meter_store, holidays=HOLIDAYS)
    arr = settle_period(arr_store, start, end, NOW, meter, PENALTY, prefetch=meter.prepare)
    assert meter.reads == 1
    # s0 at 2030-01-15 17:00: n-one's actual, and a baseline day of n-two-days' ISPs on 2030-01-17
    assert ref.revised == arr.revised == ["n-one", "n-two-days"]
    assert [s.revision for s in arr.settlements if s.order_id in arr.revised] == [1, 1]
    assert arr.unchanged == ref.unchanged and arr.failed == ref.failed and arr.new == []
    assert _dumps(arr.settlements) == _dumps(ref.settlements)


#: every day of 2029 a holiday: five working days before 2030-01-03 cannot be found
YEAR_OFF = [date(2029, 1, 1) + timedelta(days=k) for k in range(365)]


@pytest.mark.parametrize(
    ("baseline", "isps", "holidays"),
    [
        ("nodes_5wd", run(at("2030-02-20", 17), 6), []),
        ("high_4_of_5", run(at("2030-02-20", 23), 4), []),  # across midnight: two event days
        ("nodes_5wd", run(at("2030-01-03", 17), 2), YEAR_OFF),  # the calendar's error
        ("nodes_5wd", [at("2030-02-25", 12), at("2030-01-03", 17)], YEAR_OFF),  # a value first, then it
        ("our_forecast", run(at("2030-02-20", 17), 3), []),
    ],
    ids=["nodes", "x-of-y-midnight", "no-working-days", "calendar-after-history", "stored"],
)
def test_array_answers_equal_metered_on_the_same_sums(
    baseline: Baseline, isps: list[datetime], holidays: list[date]
) -> None:
    start = datetime(2029, 12, 1, tzinfo=UTC)
    n = round((datetime(2030, 3, 1, tzinfo=UTC) - start) / ISP)
    kw = np.random.default_rng(7).uniform(0.0, 30.0, (2, n))
    kw[1, 5] = np.nan  # a hole in s1, long before
    ask = MeterAsk(("s0", "s1"), tuple(isps), baseline)
    got = array_answers([ask], kw, {"s0": 0, "s1": 1}, start, holidays=holidays)[ask]
    w0, w1 = read_window(ask)
    per_site = {}
    for row, site in enumerate(ask.sites):
        c0 = round((w0 - start) / ISP)
        values = kw[row, c0 : round((w1 - start) / ISP)]
        per_site[site] = {w0 + ISP * k: float(v) for k, v in enumerate(values.tolist()) if not np.isnan(v)}
    try:
        want: Any = metered(per_site, isps, baseline, holidays=holidays)
    except ValueError as exc:
        want = str(exc)
    assert (str(got) if isinstance(got, ValueError) else got) == want


def test_a_read_too_large_is_cut_in_parts_with_the_same_settlements(
    meter_store: SqliteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref_done, ref_failed = settle_due(
        _market(tmp_path / "a.sqlite"), NOW, store_metering(meter_store, holidays=HOLIDAYS), PENALTY
    )
    monkeypatch.setattr(batch_orders, "MAX_CELLS", 3 * 96 * 24)  # about three sites' 24-day read
    meter = ArrayMetering(meter_store, holidays=HOLIDAYS)
    done, failed = settle_due(_market(tmp_path / "b.sqlite"), NOW, meter, PENALTY, prefetch=meter.prepare)
    assert meter.reads > 3
    assert failed == ref_failed and _dumps(done) == _dumps(ref_done)
