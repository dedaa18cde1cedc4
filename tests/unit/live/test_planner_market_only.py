"""Market-only sites: the planner and the guard never steer them; only the market's orders do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cloud_controller.config import CloudConfig
from cloud_controller.grid import Region
from cloud_controller.live.planner import MpcPlanner, build_planner
from cloud_controller.live.types import AssetRef, SiteRef, SiteSnapshot
from cloud_controller.registry import Registry
from cloud_controller.service_setup import configured_planner
from protocols.errors import ConfigError
from tests.unit.grid.test_limits import cached_region
from tests.unit.live.test_planner_site_limits import _DailyHistory

NOW = datetime(2030, 1, 15, 17, tzinfo=UTC)


def _site(site: str, bus: int) -> SiteRef:
    return SiteRef(
        site,
        bus,
        (
            AssetRef("meter", "meter"),
            AssetRef("bat1", "battery", 5.0, 10.0),
            AssetRef("ev1", "ev", 11.0, p_guaranteed_min_kw=4.2),
        ),
    )


SITES = [_site("b0", 0), _site("b1", 1)]


@pytest.fixture(scope="module")
def region() -> Region:
    return cached_region()


def _planner(region: Region, market_only: tuple[str, ...]) -> MpcPlanner:
    # 10 kW for two sites whose EVs draw 11 kW each: the guard caps whatever it may
    return build_planner(
        region,
        SITES,
        period_s=900,
        horizon_steps=8,
        margin_s=60,
        station_limit_kw=10.0,
        market_only_sites=market_only,
    )


def _snaps(at: datetime) -> dict[str, SiteSnapshot]:
    return {
        s.site: SiteSnapshot(
            site=s.site,
            mode="online",
            p_net_kw=14.0,
            measured_at=at,
            points={"bat1/soc_pct": 50.0, "bat1/p_kw": 0.0, "ev1/p_kw": 11.0},
        )
        for s in SITES
    }


def test_a_market_only_site_gets_no_command_from_the_plan_nor_the_guard(region: Region) -> None:
    steered = _planner(region, ())
    plan = steered.plan(NOW, _snaps(NOW), _DailyHistory(14.0, 17, 19))
    assert {c.site for c in plan.commands} == {"b0", "b1"}  # without the flag both are steered
    assert ("b0", "ev1") in (steered.guard.caps if steered.guard else set())

    planner = _planner(region, ("b0",))
    plan = planner.plan(NOW, _snaps(NOW), _DailyHistory(14.0, 17, 19))
    assert "b0" in plan.excluded_sites and "b1" not in plan.excluded_sites
    assert {c.site for c in plan.commands} == {"b1"}
    assert planner.guard is not None and ("b1", "ev1") in planner.guard.caps
    assert not any(site == "b0" for site, _ in planner.guard.caps)
    # between plans: a newer measurement, still over the limit
    later = NOW + timedelta(minutes=2)
    assert all(c.site == "b1" for c in planner.correct(later, _snaps(later)))
    # its load is still in the balance: the forecast holds both sites
    assert len(plan.site_forecast_kw[0]) == 2


def test_an_unknown_market_only_site_is_refused(region: Region) -> None:
    with pytest.raises(ValueError, match="'zz' is not a registered site"):
        _planner(region, ("zz",))


def test_an_unregistered_market_only_site_in_the_config_is_a_config_error() -> None:
    config = CloudConfig.model_validate({"control": {"market_only_sites": ["b0", "zz"]}})
    with pytest.raises(ConfigError, match=r"'zz' is not a registered site") as err:
        configured_planner(config, Registry(sites=tuple(SITES)), {})
    assert err.value.key == "control.market_only_sites[1]"
