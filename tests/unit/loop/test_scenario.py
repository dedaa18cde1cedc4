"""The default demo scenario: T_idx_77 overloaded by its own rating, computed by pandapower's AC power flow."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandapower as pp
import pytest

from cloud_controller import Region, build_schutterwald_region
from gridflex.loop.prior_history import prior_from_meters
from gridflex.loop.scenario import LoopScenario, LoopSettings, build_scenario, place_sites
from gridflex.loop.substations import Substations
from gridflex.loop.twin import scenario_planner, site_refs
from protocols.assets import substation_site_id


@pytest.fixture(scope="module")
def region() -> Region:
    return build_schutterwald_region()


@pytest.fixture(scope="module")
def evening(region: Region) -> LoopScenario:
    """The default scenario over the evening peak only (17:00-19:00 UTC), to keep it short."""
    return build_scenario(LoopSettings(start_h=17.0, end_h=19.0), region)


def test_the_fleet_sits_below_the_congested_station_and_everyone_else_is_background(
    evening: LoopScenario, region: Region
) -> None:
    assert evening.element == "T_idx_77" and evening.element_rating_kva == pytest.approx(400.0)
    assert evening.threshold_kw is None and evening.controller_limit_kw is None  # no synthetic threshold
    stations = {region.site_station[h] for h in evening.household_of_site.values()}
    assert stations == {"T_idx_77"} and len(evening.household_of_site) == 20
    bg = evening.background
    assert bg is not None and bg.households.size == region.n_sites - 20
    assert not set(bg.households.tolist()) & set(evening.household_of_site.values())


def test_no_control_loading_of_T_idx_77_is_over_its_rating(evening: LoopScenario, region: Region) -> None:
    loading = evening.element_loading_pct()
    assert len(loading) == 8
    assert max(loading) > 105.0 and sum(v > 100.0 for v in loading) >= 3
    # the other stations stay within their ratings
    for name in ("T_idx_80", "T_idx_118"):
        assert max(t.station_loading_pct[name] for t in evening.no_control_truth) < 100.0
    # an independent pandapower run of the peak interval: every household's load set by hand
    k = int(np.argmax(loading))
    _, blocks = evening.no_control.interval_means_kw(evening.settings.period_s)
    bg = evening.background
    assert bg is not None
    row = bg.row(evening.no_control_times[k])
    net = copy.deepcopy(region.net)
    net.sgen["in_service"] = False
    p_kw = np.zeros(region.n_sites)
    p_kw[bg.households] = bg.p_kw[row]
    for j, site in enumerate(evening.no_control.sites):
        p_kw[evening.household_of_site[site]] = blocks[k, j]
    net.load.loc[region.site_load_idx, "p_mw"] = p_kw / 1000.0
    net.load.loc[region.site_load_idx, "q_mvar"] = p_kw / 1000.0 * np.tan(np.arccos(0.97))
    pp.runpp(net, calculate_voltage_angles=False, numba=False)
    trafo = int(net.trafo.index[net.trafo.name == "T_idx_77"][0])
    assert float(net.res_trafo.loading_percent.at[trafo]) == pytest.approx(loading[k], abs=1e-3)
    # the voltage band is strained too: reported, not hidden (the planner does not hold it)
    assert evening.no_control_truth[k].v_min_pu == pytest.approx(float(net.res_bus.vm_pu.min()), abs=1e-6)


@pytest.mark.slow  # 96 AC power flows (~7 s); the rows' shape is tested fast in test_prior_meters.py
def test_yesterdays_meter_readings_are_imported_as_grid_meter_history(evening: LoopScenario) -> None:
    times, truth = evening.yesterday_meters
    assert len(times) == 96 and times[-1] < evening.settings.start  # the day before the run
    planner = scenario_planner(evening, site_refs_of(evening))
    site = substation_site_id("T_idx_77")
    rows = planner.prior[site, "meter", "p_kw"]
    per = round(evening.settings.period_s / evening.settings.poll_s)
    assert len(rows) == 96 * per and rows[0][0] == times[0]
    # yesterday evening the station carried fleet + background: far above the fleet alone
    peak = max(v for _, v in rows)
    assert peak > 0.9 * evening.element_rating_kva * 0.97
    fleet_peak = float(evening.yesterday.interval_means_kw(900.0)[1].sum(axis=1).max())
    assert peak > 3.0 * fleet_peak
    assert (
        rows
        == prior_from_meters(times, truth, period_s=900.0, sample_s=evening.settings.poll_s)[
            site, "meter", "p_kw"
        ]
    )


def site_refs_of(scenario: LoopScenario) -> tuple:  # type: ignore[type-arg]
    from simulators.building import build
    from simulators.fleet import fleet_profiles

    s = scenario.settings
    profiles = fleet_profiles(list(scenario.specs), start=s.profile_start, seed=s.seed, days=s.profile_days)
    buildings = {spec.site: build(spec, p) for spec, p in zip(scenario.specs, profiles, strict=True)}
    return site_refs(buildings, scenario.household_of_site)


def test_placement_below_a_station_and_its_errors(region: Region) -> None:
    placed = place_sites(region, ["a", "b", "c"], seed=4, station="T_idx_118")
    assert {region.site_station[h] for h in placed.values()} == {"T_idx_118"}
    assert len(set(placed.values())) == 3
    with pytest.raises(ValueError, match="not in the region"):
        place_sites(region, ["a"], seed=1, station="T_idx_7")
    with pytest.raises(ValueError, match="households below T_idx_118"):
        place_sites(region, [f"s{i}" for i in range(57)], seed=1, station="T_idx_118")
    with pytest.raises(ValueError, match="congestion"):
        LoopSettings(congestion="hvmv")


@pytest.mark.slow
def test_the_default_twelve_hours_overload_T_idx_77_by_110_to_125_percent(region: Region) -> None:
    scenario = build_scenario(LoopSettings(), region)
    loading = scenario.element_loading_pct()
    print(f"T_idx_77 no-control peak {max(loading):.1f} %, {sum(v > 100 for v in loading)} intervals over")
    assert 110.0 <= max(loading) <= 125.0 and sum(v > 100.0 for v in loading) >= 6


async def test_substation_meters_read_the_truth_with_the_background(
    evening: LoopScenario, tmp_path: Path
) -> None:
    """What `Fleet.add_substations` serves: a copy of the truth, background included, at the clock's time."""
    subs = Substations(evening.truth.copy(), out_dir=tmp_path)
    assert subs.truth.background is evening.background and subs.truth.cos_phi == evening.truth.cos_phi
    k = int(np.argmax(evening.element_loading_pct()))
    _, blocks = evening.no_control.interval_means_kw(evening.settings.period_s)
    powers = {site: float(blocks[k, j]) for j, site in enumerate(evening.no_control.sites)}
    at = evening.no_control_times[k] + timedelta(minutes=7)
    interval = await subs.update(powers, 900.0, at=at)
    flow = interval.station_flow["T_idx_77"]
    assert flow.p_kw > 3.0 * sum(powers.values())  # the fleet is a small part of the station's load
    assert interval.station_loading_pct["T_idx_77"] == pytest.approx(
        evening.element_loading_pct()[k], abs=1e-3
    )
    assert subs.meters["T_idx_77"].p_kw == pytest.approx(flow.p_kw)
    with pytest.raises(ValueError, match="needs `at`"):
        await subs.update(powers, 900.0)


@pytest.fixture(scope="module")
def evening_with_history(region: Region) -> LoopScenario:
    """The evening scenario with three days of imported history (two before yesterday)."""
    return build_scenario(LoopSettings(start_h=17.0, end_h=19.0, history_days=3), region)


def test_older_history_days_do_not_change_today_and_are_other_days_of_the_same_households(
    evening: LoopScenario, evening_with_history: LoopScenario
) -> None:
    h3 = evening_with_history
    # today and yesterday are drawn as without the older history (their own profile window)
    assert np.array_equal(h3.no_control.p_net_kw, evening.no_control.p_net_kw)
    assert np.array_equal(h3.yesterday.p_net_kw, evening.yesterday.p_net_kw)
    assert evening.older is None and evening.older_meters == ([], [])
    older, bg, bg_old = h3.older, h3.background, h3.older_background
    assert older is not None and bg is not None and bg_old is not None
    start = h3.settings.start
    assert older.times[0] == start - timedelta(days=3) + timedelta(minutes=1)
    assert older.times[-1] == start - timedelta(days=1)  # where yesterday begins
    # the same households (who owns an EV or a heat pump) ...
    assert np.array_equal(bg_old.households, bg.households)
    assert np.array_equal(bg_old.has_ev, bg.has_ev) and np.array_equal(bg_old.has_hp, bg.has_hp)
    # ... on days of their own: the older days' fleet is not a copy of yesterday's
    day = 24 * 60
    assert not np.allclose(older.p_net_kw[-day:], h3.yesterday.p_net_kw[:day])
    with pytest.raises(ValueError, match="history_days"):
        LoopSettings(history_days=0)


@pytest.mark.slow  # 192 AC power flows for the two older days' meters (~16 s)
def test_the_imported_meter_history_holds_every_day_oldest_first(evening_with_history: LoopScenario) -> None:
    h3 = evening_with_history
    times, truth = h3.older_meters
    assert len(times) == len(truth) == 2 * 96 and times[-1] < h3.yesterday_meters[0][0]
    planner = scenario_planner(h3, site_refs_of(h3))
    rows = planner.prior[substation_site_id("T_idx_77"), "meter", "p_kw"]
    per = round(h3.settings.period_s / h3.settings.poll_s)
    assert len(rows) == 3 * 96 * per
    assert [t for t, _ in rows] == sorted(t for t, _ in rows) and rows[0][0] == times[0]
