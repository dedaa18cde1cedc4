"""The endpoints' settlement metering: one array read for all due orders' sites, every baseline as arrays.

`POST /market/settle` and `POST /market/settlements` settle many orders. Asked order by
order, `metering.store_metering` reads each order's sites and 21 days of history again and
turns them into dicts of every ISP. `ArrayMetering.prepare` (the book's `Prefetch`) reads the
sites of all the due orders in one `Store.read_bucket_means` (the ISP rollups; in parts of at
most `MAX_CELLS` sites x ISPs, so a quarter of a large fleet does not sit in memory), then
computes each order's actuals and history baseline (`nodes_5wd`, `high_4_of_5`) by
indexing that array; the book then asks it order by order as before (`Metering`), so the
AGRs' Metering (`uftp_metering`) still goes first and the settlement itself is
`settling.settlement_of`, unchanged.

The rules are `metering.metered`'s, to the bit (so a settlement computed before is found
unchanged, not revised): the sum of the order's distinct sites in their order, complete
only where every site has data inside the order's own read window (`HISTORY_DAYS` before
its first ISP for a history baseline, its ISPs otherwise), the order's days as its only
event days, the same reason text for what is missing.
`tests/unit/market/test_batch_orders.py` settles the same orders both ways.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import date, datetime, timedelta

import numpy as np

from cloud_controller.market.baselines import HISTORY_BASELINES
from cloud_controller.market.metering import HISTORY_DAYS, store_metering
from cloud_controller.market.products import ISP_S
from cloud_controller.market.settlement import working_days_before
from cloud_controller.market.settling import MeterAsk, Metering
from cloud_controller.store import Store
from cloud_controller.store.buckets import FloatArray
from protocols.assets import Points

__all__ = ["MAX_CELLS", "ArrayMetering", "Metered", "array_answers", "read_window"]

#: (baseline kW, actual kW) per ISP, as a `Metering` answers
Metered = tuple[dict[datetime, float], dict[datetime, float]]

#: sites x ISPs of one read (32 MB of float64): a quarter of a large fleet is read in parts
MAX_CELLS = 4_000_000


def read_window(ask: MeterAsk) -> tuple[datetime, datetime]:
    """[start, end) of what `store_metering` reads for `ask`: its ISPs, and the history before them."""
    back = timedelta(days=HISTORY_DAYS if ask.baseline in HISTORY_BASELINES else 0)
    return min(ask.isps) - back, max(ask.isps) + timedelta(seconds=ISP_S)


class ArrayMetering:
    """A `Metering` answering from one array read of every asked order's sites (`prepare`).

    An order not prepared (a dispute's, or one asked after) is metered directly from the
    store (`store_metering`), so nothing depends on `prepare` having been called.
    """

    def __init__(self, store: Store, *, holidays: Collection[date] = ()) -> None:
        self.store = store
        self.holidays = frozenset(holidays)
        self.reads = 0  # array reads done by `prepare` (one per call with anything to read)
        self._answers: dict[MeterAsk, Metered | ValueError] = {}
        self._direct: Metering = store_metering(store, holidays=self.holidays)

    def prepare(self, asks: Sequence[MeterAsk]) -> None:
        """Read the asked orders' sites over all their windows at once (in parts of `MAX_CELLS`) and meter each."""
        todo = sorted((a for a in dict.fromkeys(asks) if a.sites and a.isps), key=read_window)
        for part in _parts(todo):
            sites = list(dict.fromkeys(s for a in part for s in a.sites))
            start, end = read_window(part[0])[0], max(read_window(a)[1] for a in part)
            kw = self.store.read_bucket_means(sites, Points.METER_P_KW, start, end, ISP_S)
            self.reads += 1
            rows = {s: i for i, s in enumerate(sites)}
            self._answers.update(array_answers(part, kw, rows, start, holidays=self.holidays))

    def __call__(self, sites: Sequence[str], isps: Sequence[datetime], baseline: str) -> Metered:
        """The prepared answer for this order (a fresh copy), else the store's direct one."""
        got = self._answers.get(MeterAsk(tuple(sites), tuple(isps), baseline))
        if got is None:
            return self._direct(sites, isps, baseline)
        if isinstance(got, ValueError):
            raise ValueError(str(got))
        return dict(got[0]), dict(got[1])


def _parts(asks: Sequence[MeterAsk]) -> list[list[MeterAsk]]:
    """`asks` (sorted by window) cut where one read would pass `MAX_CELLS` sites x ISPs."""
    parts: list[list[MeterAsk]] = []
    part: list[MeterAsk] = []
    sites: set[str] = set()
    start = end = 0.0
    for ask in asks:
        w0, w1 = (t.timestamp() for t in read_window(ask))
        grown = len(sites | set(ask.sites)) * (max(end, w1) - (start if part else w0)) / ISP_S
        if part and grown > MAX_CELLS:
            parts.append(part)
            part, sites = [], set()
        if not part:
            start, end = w0, w1
        part.append(ask)
        sites |= set(ask.sites)
        end = max(end, w1)
    if part:
        parts.append(part)
    return parts


def array_answers(
    asks: Sequence[MeterAsk],
    kw: FloatArray,
    rows: Mapping[str, int],
    start: datetime,
    *,
    holidays: Collection[date] = (),
) -> dict[MeterAsk, Metered | ValueError]:
    """Each ask's (baseline, actual) kW per ISP from `kw` (sites x ISPs from `start`), or its ValueError."""
    t0 = start.timestamp()
    sums: dict[tuple[str, ...], FloatArray] = {}
    calendar = _Calendar(holidays)
    out: dict[MeterAsk, Metered | ValueError] = {}
    for ask in asks:
        sites = tuple(dict.fromkeys(ask.sites))  # metered() keys them by site: once each
        total = sums.get(sites)
        if total is None:
            total = np.zeros(kw.shape[1])
            for s in sites:  # in order, from 0.0: the floats `metered` adds
                total += kw[rows[s]]
            sums[sites] = total
        w0, w1 = read_window(ask)
        c0, c1 = round((w0.timestamp() - t0) / ISP_S), round((w1.timestamp() - t0) / ISP_S)
        try:
            out[ask] = _answer(ask, sites, kw, rows, total, t0, (c0, c1), calendar)
        except ValueError as exc:
            out[ask] = exc
    return out


def _answer(
    ask: MeterAsk,
    sites: tuple[str, ...],
    kw: FloatArray,
    rows: Mapping[str, int],
    total: FloatArray,
    t0: float,
    window: tuple[int, int],
    calendar: _Calendar,
) -> Metered:
    """One order's answer, raising what `metering.metered` raises, in the order it raises it."""
    isps = ask.isps
    cols = np.asarray([round((t.timestamp() - t0) / ISP_S) for t in isps])
    values = total[cols]
    bad = np.flatnonzero(np.isnan(values))
    if bad.size:
        t = isps[int(bad[0])]
        missing = sorted(s for s in sites if np.isnan(kw[rows[s], cols[bad[0]]]))
        raise ValueError(f"no metered power at {t.isoformat()} for site(s) {', '.join(missing)}")
    actual = {t: float(v) for t, v in zip(isps, values.tolist(), strict=True)}
    if ask.baseline not in HISTORY_BASELINES:  # fsp_prognosis, our_forecast: stored (settling.py)
        return {}, actual
    x, y = (4, 5) if ask.baseline == "high_4_of_5" else (5, 5)
    events = frozenset(t.date() for t in isps)
    lags = np.zeros((len(isps), y), dtype=np.int64)  # days back from each ISP to its baseline days
    failed: tuple[int, ValueError] | None = None  # the first ISP whose calendar fails
    for k, isp in enumerate(isps):
        got = calendar.days_back(isp.date(), y, events)
        if isinstance(got, ValueError):
            failed = (k, got)
            break
        lags[k] = got
    n_ok = len(isps) if failed is None else failed[0]
    back = cols[:, None] - lags * round(86_400 / ISP_S)  # the same ISP of those days (UTC: no DST)
    hist = total[np.clip(back, 0, total.size - 1)]
    missing_at = ((back < window[0]) | (back >= window[1]) | np.isnan(hist))[:n_ok]
    if missing_at.any():  # the first day without a complete value, as `nodes_baseline` meets it
        k, j = divmod(int(np.argmax(missing_at.ravel())), y)
        t = isps[k] - timedelta(days=int(lags[k, j]))
        raise ValueError(f"history has no value at {t.isoformat()} (baseline for {isps[k].isoformat()})")
    if failed is not None:
        raise ValueError(str(failed[1]))
    history = total[back]
    if x < y:  # the mean of the x highest (x_of_y_baseline: sorted, highest first)
        history = np.ascontiguousarray(np.sort(history, axis=1)[:, ::-1][:, :x])
    base = history.mean(axis=1)
    return {t: float(v) for t, v in zip(isps, base.tolist(), strict=True)}, actual


class _Calendar:
    """`working_days_before` (its rule and its error), once per day, count and set of event days."""

    def __init__(self, holidays: Collection[date]) -> None:
        self.holidays = holidays
        self._known: dict[tuple[date, int, frozenset[date]], list[int] | ValueError] = {}

    def days_back(self, day: date, n: int, events: frozenset[date]) -> list[int] | ValueError:
        """How many days before `day` its `n` baseline days are (newest first), or the calendar's error."""
        key = (day, n, events)
        if key not in self._known:
            try:
                days = working_days_before(day, n, holidays=self.holidays, skip=events)
                self._known[key] = [(day - d).days for d in days]
            except ValueError as exc:
                self._known[key] = exc
        return self._known[key]
