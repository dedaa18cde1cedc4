"""The month settlement on arrays equals the per-order path (`settle` + `nodes_baseline`) number for number."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from cloud_controller.market import Order, nodes_baseline, settle
from cloud_controller.market.batch import baseline_day_index, settle_month

DAYS = [date(2030, 3, 1) + timedelta(days=k) for k in range(40)]  # Fri 1 Mar .. 9 Apr 2030
FIRST = 21  # settle 22 Mar .. 9 Apr
HOLIDAY = date(2030, 3, 29)  # a Friday
N_ISP = 96


def _ts(d: date, k: int) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC) + timedelta(minutes=15 * k)


def test_baseline_days_skip_weekends_holidays_and_the_sites_own_event_days() -> None:
    event = np.zeros((2, len(DAYS)), dtype=bool)
    event[1, DAYS.index(date(2030, 3, 21))] = True  # site 1 had an order on Thu 21 Mar
    idx = baseline_day_index(DAYS, FIRST, event, holidays={HOLIDAY})
    # for Mon 1 Apr: Thu 28, Wed 27, Tue 26, Mon 25, Fri 22 (Fri 29 is the holiday)
    monday = DAYS.index(date(2030, 4, 1)) - FIRST
    assert [DAYS[i] for i in idx[0, monday]] == [date(2030, 3, d) for d in (28, 27, 26, 25, 22)]
    # for Fri 22 Mar: site 0 takes Thu 21, site 1 skips it for Fri 15
    assert [DAYS[i].day for i in idx[0, 0]] == [21, 20, 19, 18, 15]
    assert [DAYS[i].day for i in idx[1, 0]] == [20, 19, 18, 15, 14]
    with pytest.raises(ValueError, match="site 0: fewer than 5 working days before 2030-03-02"):
        baseline_day_index(DAYS, 1, np.zeros((1, len(DAYS)), dtype=bool))


def test_the_month_on_arrays_equals_the_per_order_path() -> None:
    rng = np.random.default_rng(7)
    S = 3
    metered = rng.uniform(5.0, 50.0, (S, len(DAYS), N_ISP))
    M = len(DAYS) - FIRST
    ordered = np.zeros((S, M, N_ISP))
    price = rng.uniform(0.1, 2.0, (S, M))
    for s in range(S):
        for m in rng.choice(M, size=6, replace=False):  # six order days per site, 17:00-20:00
            ordered[s, m, 68:80] = rng.uniform(1.0, 15.0, 12)
    got = settle_month(metered, DAYS, FIRST, ordered, price, holidays={HOLIDAY}, penalty_factor=1.5)
    for s in range(S):
        history = {_ts(d, k): metered[s, j, k] for j, d in enumerate(DAYS) for k in range(N_ISP)}
        events = {DAYS[FIRST + m] for m in range(M) if ordered[s, m].any()}
        for m in range(M):
            d = DAYS[FIRST + m]
            isps = [_ts(d, k) for k in range(N_ISP)]
            base = nodes_baseline(history, isps, holidays={HOLIDAY}, event_days=events)
            assert [base[t] for t in isps] == pytest.approx(got.baseline_kw[s, m])
            kw = {t: ordered[s, m, k] for k, t in enumerate(isps)}
            e = sum(kw.values()) * 0.25
            order = Order("o", "off", "opt", "fsp", "cp", 1.0, kw, float(price[s, m]), e * float(price[s, m]))
            one = settle(order, base, {t: history[t] for t in isps}, penalty_factor=1.5)
            assert [i.delivered_kw for i in one.isps] == pytest.approx(got.delivered_kw[s, m])
            assert [i.deficiency_kw for i in one.isps] == pytest.approx(got.deficiency_kw[s, m])
            assert (one.price_eur, one.penalty_eur, one.net_eur) == pytest.approx(
                (got.price_eur[s, m], got.penalty_eur[s, m], got.net_eur[s, m])
            )
    assert got.net_eur.sum() > 0 and got.penalty_eur.sum() > 0  # the case has both paid and short kWh


def test_bad_shapes_are_refused_naming_them() -> None:
    with pytest.raises(ValueError, match="shapes: metered"):
        settle_month(np.zeros((1, 30, 96)), DAYS[:30], 21, np.zeros((1, 8, 96)), np.zeros((1, 9)))
