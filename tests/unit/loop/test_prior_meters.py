"""Yesterday's substation meter readings as imported history, keyed as live grid-meter telemetry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gridflex.loop.grid_truth import StationFlow, TruthInterval
from gridflex.loop.prior_history import PriorHistory, merge_prior, prior_from_meters
from protocols.assets import Points, substation_site_id

T0 = datetime(2030, 1, 14, 12, tzinfo=UTC)


def _interval(p_kw: float) -> TruthInterval:
    flow = StationFlow(p_kw=p_kw, q_kvar=p_kw / 4, v_pu=0.98, v_ln_v=226.0, i_a=p_kw * 1.4)
    return TruthInterval(p_kw + 5, 1.0, {"T_idx_77": p_kw / 4}, 0.95, 1.0, station_flow={"T_idx_77": flow})


class _Live:
    def __init__(self, rows: list[tuple[datetime, float]]) -> None:
        self.rows = rows

    def read_series(
        self, site: str, asset: str, point: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        return [(t, v) for t, v in self.rows if start <= t < end]


def test_a_row_every_poll_held_over_each_interval_under_the_meters_site_and_points() -> None:
    starts = [T0, T0 + timedelta(minutes=15)]
    prior = prior_from_meters(starts, [_interval(300.0), _interval(420.0)], period_s=900.0, sample_s=120.0)
    site = substation_site_id("T_idx_77")
    assert set(prior) == {(site, *Points.METER_P_KW), (site, *Points.METER_Q_KVAR)}
    p = prior[site, *Points.METER_P_KW]
    assert len(p) == 2 * 8  # 900 s / 120 s -> 8 rows an interval, 112.5 s apart
    assert p[0] == (T0, 300.0) and p[7] == (T0 + timedelta(seconds=7 * 112.5), 300.0)
    assert p[8] == (T0 + timedelta(minutes=15), 420.0)
    assert prior[site, *Points.METER_Q_KVAR][-1][1] == pytest.approx(105.0)
    # served before the first live row, the live rows after it (a live row wins)
    live = _Live([(T0 + timedelta(minutes=20), 1.0)])
    rows = PriorHistory(live, prior).read_series(site, "meter", "p_kw", T0, T0 + timedelta(hours=1))
    assert rows[-1] == (T0 + timedelta(minutes=20), 1.0)
    assert all(t < T0 + timedelta(minutes=20) for t, _ in rows[:-1]) and len(rows) == 8 + 3 + 1


def test_mismatched_or_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="interval starts"):
        prior_from_meters([T0], [], period_s=900.0, sample_s=120.0)
    with pytest.raises(ValueError, match="sample_s"):
        prior_from_meters([T0], [_interval(1.0)], period_s=900.0, sample_s=0.0)


def test_several_imports_merge_into_one_history_oldest_first() -> None:
    key = ("sub-T_idx_77", "meter", "p_kw")
    later = {key: [(T0 + timedelta(days=1), 2.0)], ("a", "meter", "p_kw"): [(T0, 5.0)]}
    earlier = {key: [(T0, 1.0), (T0 + timedelta(hours=1), 1.5)]}
    merged = merge_prior([later, earlier])
    assert merged[key] == [(T0, 1.0), (T0 + timedelta(hours=1), 1.5), (T0 + timedelta(days=1), 2.0)]
    assert merged["a", "meter", "p_kw"] == [(T0, 5.0)]
    assert later[key] == [(T0 + timedelta(days=1), 2.0)]  # the parts are not changed
