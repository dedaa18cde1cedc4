"""`GET /grid/state` over a controller-shaped object: site meters from snapshots, pseudo for the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cloud_controller.grid import Region, region_from_json
from cloud_controller.live.types import AssetRef, SiteRef, SiteSnapshot
from cloud_controller.web.grid_state_api import grid_state_router, live_measurements
from tests.unit.grid.estimate.cases import small_net, truth

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Region:
    import pandapower as pp

    path = Path(tmp_path_factory.mktemp("net")) / "small.json"
    pp.to_json(truth(small_net()), str(path))
    return region_from_json(str(path), hvmv_trafo_name="HV/MV")


def _controller(region: Region, readings: dict[int, tuple[float, float]]) -> Any:
    """Sites on households 0..n-1; readings: household -> (p_kw, age_s)."""
    sites = [SiteRef(f"s{h}", h, (AssetRef("meter", "meter"),)) for h in range(region.n_sites)]
    snaps = {}
    for ref in sites:
        snap = SiteSnapshot(site=ref.site, mode="online")
        if ref.region_site in readings:
            p, age = readings[ref.region_site]
            snap.p_net_kw = p
            snap.measured_at = NOW - timedelta(seconds=age)
        snaps[ref.site] = snap
    return SimpleNamespace(
        built_planner=SimpleNamespace(region=region),
        registry=SimpleNamespace(sites=sites),
        snapshots=snaps,
        last_plan=None,
        clock=SimpleNamespace(now=lambda: NOW),
    )


def test_fresh_site_readings_are_metered_and_old_ones_fall_back_to_pseudo(region: Region) -> None:
    p_true = region.net.load.p_mw.loc[region.site_load_idx].to_numpy() * 1e3
    ctl = _controller(region, {0: (float(p_true[0]), 10.0), 1: (float(p_true[1]), 7200.0)})
    mb, metered = live_measurements(region, ctl.registry.sites, ctl.snapshots, None, NOW)
    assert mb.loads.metered[0].tolist()[:3] == [True, False, False]
    assert metered["site_meters"] == 1 and metered["substation_meters"] == 0
    assert mb.loads.sigma_p_kw[0, 0] < 0.1 < mb.loads.sigma_p_kw[0, 1]


def test_grid_state_route_returns_per_element_state_sigma_and_observability(region: Region) -> None:
    p_true = region.net.load.p_mw.loc[region.site_load_idx].to_numpy() * 1e3
    ctl = _controller(region, {h: (float(p_true[h]), 5.0) for h in range(region.n_sites)})
    app = FastAPI()
    app.include_router(grid_state_router(ctl))
    body = TestClient(app).get("/grid/state").json()
    assert body["converged"] and body["metered"]["metered_share"] == 1.0
    assert {t["name"] for t in body["transformers"]} == {"HV/MV", "station 0", "station 1"}
    net = region.net
    for t in body["transformers"]:
        idx = int(t["trafo"].split(":")[1])
        # every household metered, V pseudo at the set-point the truth used: loading is the truth
        assert t["loading_pct"] == pytest.approx(float(net.res_trafo.loading_percent.at[idx]), abs=0.05)
        assert t["loading_sigma_pct"] > 0
    vm = {b["bus"]: b["vm_pu"] for b in body["buses"]}
    assert max(abs(vm[b] - float(net.res_bus.vm_pu.at[b])) for b in vm) < 1e-3
    assert body["observability"]["observable_from_meters"]
    assert len(body["lines"]) == len(net.line) and body["bad_data"] == []
    assert np.isfinite(body["v_min_pu"])


def test_grid_state_is_503_before_the_planner_exists() -> None:
    ctl = SimpleNamespace(built_planner=None)
    app = FastAPI()
    app.include_router(grid_state_router(ctl))  # type: ignore[arg-type]
    assert TestClient(app).get("/grid/state").status_code == 503
