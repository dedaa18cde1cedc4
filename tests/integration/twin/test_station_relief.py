"""The demo's physical congestion (T_idx_77 by its rating) relieved by the twin, as the demo plans it.

The demo's settings (`gridflex.cli.demo`: a week of imported history, z = 1.645), the offline
twin (the controller against the same physics, no sockets), 20 buildings, seed 1,
12:00-24:00. The figures it guards are docs/grid.md's ("The demo's relief"): the energy
above the rating falls by more than 80 %, and with the week of history by more than with
yesterday alone.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from cloud_controller.grid import Region, build_schutterwald_region
from gridflex.cli.demo import DEMO_FORECAST_Z, DEMO_HISTORY_DAYS
from gridflex.loop.scenario import LoopScenario, LoopSettings, build_scenario
from gridflex.loop.twin import TwinResult, run_twin

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # 12 h twins and 576 AC power flows (~3 min)


def _kvah_above(scenario: LoopScenario, loading_pct: list[float]) -> float:
    over = np.maximum(np.asarray(loading_pct) - 100.0, 0.0)
    return float(over.sum() * scenario.element_rating_kva / 100.0 * scenario.settings.period_s / 3600.0)


def _loading(result: TwinResult) -> list[float]:
    return [t.station_loading_pct["T_idx_77"] for t in result.truth]


@pytest.fixture(scope="module")
def region() -> Region:
    return build_schutterwald_region()


def test_a_week_of_history_relieves_T_idx_77_by_more_than_yesterday_alone(region: Region) -> None:
    base = LoopSettings(n_sites=20, seed=1, bacnet=False, forecast_z=DEMO_FORECAST_Z)
    week = build_scenario(replace(base, history_days=DEMO_HISTORY_DAYS), region)
    yesterday = build_scenario(base, region)
    no_control = week.element_loading_pct()
    assert no_control == yesterday.element_loading_pct()  # the same day either way
    before = _kvah_above(week, no_control)
    assert max(no_control) > 115.0 and before > 60.0

    with_week = run_twin(week)
    with_yesterday = run_twin(yesterday)
    after_week, after_yesterday = (
        _kvah_above(week, _loading(with_week)),
        _kvah_above(yesterday, _loading(with_yesterday)),
    )
    print(
        f"kVAh above 400 kVA: no control {before:.1f}, yesterday {after_yesterday:.1f}, week {after_week:.1f}"
    )
    assert after_week < 0.2 * before  # more than 80 % of the overload energy removed
    assert after_week < after_yesterday
    assert sum(v > 100.0 for v in _loading(with_week)) < sum(v > 100.0 for v in no_control) / 2
    assert with_week.ev_owed_kwh <= 0.5  # not bought with the EVs' energy
