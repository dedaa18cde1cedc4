"""Settlement and baselines: delivered, deficiency, net = price − penalty, NODES' working days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from cloud_controller.market import (
    Order,
    baseline_accuracy,
    nodes_baseline,
    settle,
    working_days_before,
    x_of_y_baseline,
)

ISP = datetime(2030, 4, 23, 17, 0, tzinfo=UTC)  # a Tuesday
HOUR = [ISP + timedelta(minutes=15 * k) for k in range(4)]


def _order(kw: float, price: float) -> Order:
    return Order("o1", "off", "opt", "fsp", "cp", 1.0, {t: kw for t in HOUR}, price, price * kw * 1.0)


def test_pay_as_clear_vector_settles_to_332_5_when_all_is_delivered() -> None:
    """Cleared at 3.5 €/kWh, 50 kW and 45 kW delivered for 1 h: 332.5 € paid in total."""
    total = 0.0
    for kw in (50.0, 45.0):
        s = settle(_order(kw, 3.5), {t: 200.0 for t in HOUR}, {t: 200.0 - kw for t in HOUR})
        assert s.deficiency_kwh == 0 and s.delivered_kwh == pytest.approx(kw)
        total += s.net_eur
    assert total == pytest.approx(332.5)


def test_net_is_price_minus_penalty_for_what_was_not_delivered() -> None:
    # ordered 20 kW for 1 h at 4 €/kWh = 80 €; delivered 20, 20, 10, 0 kW: 7.5 kWh short
    actual = dict(zip(HOUR, [80.0, 80.0, 90.0, 100.0], strict=True))
    s = settle(_order(20.0, 4.0), {t: 100.0 for t in HOUR}, actual, penalty_factor=1.5)
    assert [i.delivered_kw for i in s.isps] == [20.0, 20.0, 10.0, 0.0]
    assert [i.deficiency_kw for i in s.isps] == [0.0, 0.0, 10.0, 20.0]
    assert s.price_eur == pytest.approx(80.0) and s.deficiency_kwh == pytest.approx(7.5)
    assert s.penalty_eur == pytest.approx(1.5 * 4.0 * 7.5)
    assert s.net_eur == pytest.approx(s.price_eur - s.penalty_eur) == pytest.approx(35.0)
    # a site that used more than its baseline delivered nothing, never a negative amount
    worse = settle(_order(20.0, 4.0), {t: 100.0 for t in HOUR}, {t: 110.0 for t in HOUR})
    assert all(i.delivered_kw == 0.0 for i in worse.isps)


def test_five_working_day_baseline_skips_the_weekend_and_a_holiday() -> None:
    # Tuesday 23 April 2030; Monday 22 is a holiday (Easter Monday); 20-21 the weekend
    easter_monday = date(2030, 4, 22)
    days = working_days_before(ISP.date(), 5, holidays={easter_monday})
    assert days == [
        date(2030, 4, 19),
        date(2030, 4, 18),
        date(2030, 4, 17),
        date(2030, 4, 16),
        date(2030, 4, 15),
    ]
    history = {}
    for k in range(1, 15):
        d = ISP - timedelta(days=k)
        history[d] = 1000.0 if d.date() == easter_monday or d.weekday() >= 5 else float(d.day)
    got = nodes_baseline(history, [ISP], holidays={easter_monday})
    assert got[ISP] == pytest.approx((19 + 18 + 17 + 16 + 15) / 5)  # no weekend, no holiday value
    # a day the site had an event is skipped too
    skipped = nodes_baseline(history, [ISP], holidays={easter_monday}, event_days={date(2030, 4, 19)})
    assert skipped[ISP] == pytest.approx((18 + 17 + 16 + 15 + 12) / 5)
    with pytest.raises(ValueError, match="no value"):
        nodes_baseline({}, [ISP])


def test_high_x_of_y_baseline_takes_the_x_highest_days() -> None:
    history = {ISP - timedelta(days=k): v for k, v in zip(range(1, 8), [5, 9, 7, 7, 7, 1, 3], strict=True)}
    # working days before Tue 23 Apr: 22 (5), 19 (1)... weekend 20-21 skipped
    got = x_of_y_baseline(history, [ISP], x=2, y=3)
    days = working_days_before(ISP.date(), 3)
    values = sorted((history[datetime.combine(d, ISP.timetz())] for d in days), reverse=True)
    assert got[ISP] == pytest.approx((values[0] + values[1]) / 2)


def test_baseline_accuracy_reports_bias_and_errors() -> None:
    acc = baseline_accuracy({t: 10.0 for t in HOUR}, dict(zip(HOUR, [8.0, 10.0, 12.0, 6.0], strict=True)))
    assert acc.n == 4 and acc.bias_kw == pytest.approx(1.0) and acc.mae_kw == pytest.approx(2.0)
    assert acc.rmse_kw == pytest.approx((4 + 0 + 4 + 16) ** 0.5 / 2)
