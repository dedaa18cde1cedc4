"""The forecast judges each element against the limit in force: an envelope, an override, a bus's own band."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from cloud_controller.forecast.limits_input import forecast_limits
from cloud_controller.forecast.probabilistic import ProbabilisticCongestion
from cloud_controller.grid import Region
from cloud_controller.grid.limits import Envelope
from cloud_controller.grid.limits_config import limits_for_region
from tests.unit.forecast.conftest import evening

T0 = datetime(2030, 1, 15, 16, tzinfo=UTC)
PERIOD_S = 900.0


def _starts(n: int) -> list[datetime]:
    return [T0 + timedelta(seconds=k * PERIOD_S) for k in range(n)]


def test_an_envelope_caps_the_station_only_in_its_intervals(
    feeder: Region, model: ProbabilisticCongestion
) -> None:
    p50, sigma = evening(6)
    limits = limits_for_region(feeder).with_envelopes(
        [Envelope("station", T0 + timedelta(minutes=30), T0 + timedelta(minutes=60), max_loading_pct=20.0)]
    )
    pct, band = forecast_limits(limits, model.branch_refs, model.bus_refs, _starts(6), PERIOD_S)
    station = model.branch_refs.index("trafo:1")
    assert pct[:, station].tolist() == [100.0, 100.0, 20.0, 20.0, 100.0, 100.0]
    plain = model.forecast(p50, sigma)
    capped = model.forecast(p50, sigma, branch_limit_pct=pct, bus_band_pu=band)
    e = capped.names.index("station")
    # the loading itself does not change; what exceeds does, and only in the envelope's intervals
    assert np.allclose(capped.expected[e], plain.expected[e])
    below_20 = plain.quantiles[0, e, 2:4] > 20.0  # p10 of the loading already above the 20 % cap
    assert below_20.all() and np.all(capped.p_exceed[e, 2:4] >= 0.9)
    assert np.array_equal(capped.p_exceed[e, [0, 1, 4, 5]], plain.p_exceed[e, [0, 1, 4, 5]])
    assert capped.limit_hi[e] == 20.0  # the tightest over the horizon
    assert any(a.element == "trafo:1" for a in capped.alerts)


def test_a_bus_band_override_moves_the_voltage_indicator(
    feeder: Region, model: ProbabilisticCongestion
) -> None:
    p50, sigma = evening(4)
    far = model.bus_refs[-1]
    name = limits_for_region(feeder).name_of_ref(far)
    from cloud_controller.grid.limits import LimitOverride

    limits = limits_for_region(feeder).with_overrides({name: LimitOverride(v_min_pu=0.999)})
    pct, band = forecast_limits(limits, model.branch_refs, model.bus_refs, _starts(4), PERIOD_S)
    assert band[0][-1] == 0.999 and band[0][0] == 0.95
    f = model.forecast(p50, sigma, branch_limit_pct=pct, bus_band_pu=band)
    e = f.elements.index(far)
    assert f.limit_lo[e] == 0.999
    assert np.all(f.p_exceed[e] == 1.0)  # the far end sits below 0.999 pu in every scenario
