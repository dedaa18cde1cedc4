"""GOPACS's grid rows on meshed and multi-feed regions: PTDFs, rows per direction, the AC check.

The ring: a 400 kVA station feeds an LV busbar; a ring of five cables (NAYY 4x150 SE, one
of them single, ~187 kW; the others doubled) runs busbar → ring-1 → … → ring-4 → busbar,
and two spurs feed b1 and c1. a1 on ring-1 exports 205 kW: 77 % of it comes back through
ring-0 (the single cable, 0.769 kW per kW by PTDF: its length 0.03 km against 0.20 km the
other way round), so ring-0 runs at ~85 %; b1 and c1 draw 320 kW each, so the station is
at ~113 % and the forecast's need at risk 0.1 is ~58 kW per ISP. The cheap offer (60 kW at
a1) would push ring-0 to ~110 % in export; the dear one (60 kW at b1) does not.
"""

from __future__ import annotations

import copy
import warnings
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from cloud_controller.forecast.background import LatestForecast
from cloud_controller.forecast.probabilistic import ProbabilisticCongestion
from cloud_controller.forecast.result import ForecastOptions
from cloud_controller.grid import Region
from cloud_controller.grid.meshed.planning import DcGrid, meshed_region
from cloud_controller.market.clearing import Clearing, ClearingOptions, clear
from cloud_controller.market.forecast_hook import ViewBuilder, meshed_view_parts
from cloud_controller.market.grid_check import ac_check_of, clear_on_grid, grid_inputs, pgm_power_flow
from cloud_controller.market.grid_view import GridView
from cloud_controller.market.meshed_rows import row_id
from cloud_controller.market.products import FlexOffer, FlexRequest, OfferOption
from cloud_controller.market.ptdf import reduction_ptdf
from tests.unit.grid.meshed.nets import loop_two_feeds
from tests.unit.market import grid_case
from tests.unit.market.grid_case import DELIVERY, NOW, STARTS, T

P50 = np.tile([-205.0, 320.0, 320.0], (T, 1))
SIGMA = np.full((T, 3), 3.0)
SITES = ("a1", "b1", "c1")
SITES_OF = {"cheap": ["a1"], "dear": ["b1"]}
CLEAR_AT = DELIVERY - timedelta(hours=2)
#: PTDF against pandapower: the DC power flow exactly (kW per kW); the AC one on lines (LV
#: cables of one type, so the split by reactance is the split by impedance) and on the
#: station, whose losses (~5 % of the change at 0.4 kV) a lossless model does not see
DC_TOL = 1e-6
AC_LINE_TOL = 0.02
AC_TRAFO_TOL = 0.06


def ring_net() -> Any:
    """The ring of the module docstring: loads a1 (ring-1), b1 and c1 (spurs), all at 0 kW."""
    import pandapower as pp

    net = pp.create_empty_network()
    mv = pp.create_bus(net, 20.0, name="MV")
    lv = pp.create_bus(net, 0.4, name="LV busbar")
    pp.create_ext_grid(net, mv, vm_pu=1.0)
    pp.create_transformer(net, mv, lv, "0.4 MVA 20/0.4 kV", name="station")
    ring = [lv] + [pp.create_bus(net, 0.4, name=f"ring-{i}") for i in range(1, 5)]
    for i, (km, parallel) in enumerate(zip((0.03, 0.05, 0.04, 0.06, 0.05), (1, 2, 2, 2, 2), strict=True)):
        pp.create_line(
            net, ring[i], ring[(i + 1) % 5], km, "NAYY 4x150 SE", name=f"ring-{i}", parallel=parallel
        )
    pp.create_load(net, ring[1], p_mw=0.0, name="a1")
    for n in ("b", "c"):
        b = pp.create_bus(net, 0.4, name=f"house-{n}")
        pp.create_line(net, lv, b, 0.04, "NAYY 4x150 SE", name=f"feeder-{n}", parallel=2)
        pp.create_load(net, b, p_mw=0.0, name=f"{n}1")
    return net


@pytest.fixture(scope="module")
def ring() -> Region:
    return meshed_region(ring_net())


@pytest.fixture(scope="module")
def view(ring: Region) -> GridView:
    fc = ProbabilisticCongestion(ring, [0, 1, 2]).forecast(P50, SIGMA, ForecastOptions(n_scenarios=50))
    assert isinstance(ring.grid, DcGrid)
    site_bus = tuple(int(b) for b in ring.site_bus)
    ptdf, flows = meshed_view_parts(ring.grid, site_bus, P50)
    return GridView(fc, STARTS, ring.grid, SITES, site_bus, P50, pgm_power_flow(ring, [0, 1, 2]), ptdf, flows)


def _flows_kw(net: Any, names: tuple[str, ...], site_load_idx: Any, site_kw: np.ndarray, *, dc: bool) -> Any:
    """pandapower's from-side flow (kW) of each branch with the sites at `site_kw` (unity power factor)."""
    import pandapower as pp

    n = copy.deepcopy(net)
    n.load.loc[site_load_idx, "p_mw"] = site_kw / 1000.0
    n.load["q_mvar"] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dc:
            pp.rundcpp(n)
        else:
            pp.runpp(n, numba=False)
    out = []
    for name in names:
        table, idx = name.split(":")
        col = "p_from_mw" if table == "line" else "p_hv_mw"
        out.append(float(n[f"res_{table}"][col].at[int(idx)]) * 1000.0)
    return np.asarray(out)


@pytest.mark.parametrize("case", ["ring", "loop_two_feeds"])
def test_the_ptdf_is_the_flow_change_of_a_dc_and_an_ac_power_flow(case: str) -> None:
    """40 kW less at each site in turn: PTDF × 40 against pandapower's rundcpp and runpp deltas.

    `loop_two_feeds` is a 20 kV ring with a chord fed at two buses: both feeds take up the change.
    """
    net = ring_net() if case == "ring" else loop_two_feeds()
    region = meshed_region(net)
    assert isinstance(region.grid, DcGrid)
    names = region.grid.branch_names
    ptdf = reduction_ptdf(region.grid, region.site_bus)
    base = np.resize([-205.0, 320.0, 320.0] if case == "ring" else [800.0], region.n_sites)
    is_line = np.asarray([n.startswith("line:") for n in names])
    dc0 = _flows_kw(net, names, region.site_load_idx, base, dc=True)
    ac0 = _flows_kw(net, names, region.site_load_idx, base, dc=False)
    for j in range(region.n_sites):
        less = base.copy()
        less[j] -= 40.0
        dc = (_flows_kw(net, names, region.site_load_idx, less, dc=True) - dc0) / 40.0
        ac = (_flows_kw(net, names, region.site_load_idx, less, dc=False) - ac0) / 40.0
        np.testing.assert_allclose(ptdf[:, j], dc, atol=DC_TOL)
        assert np.max(np.abs(ptdf[is_line, j] - ac[is_line])) < AC_LINE_TOL, (j, ptdf[:, j], ac)
        assert np.all(np.abs(ptdf[~is_line, j] - ac[~is_line]) < AC_TRAFO_TOL), (j, ptdf[:, j], ac)
    if case == "ring":
        k = names.index("line:0")
        assert ptdf[k, 0] == pytest.approx(
            -0.10 / 0.13, abs=1e-9
        )  # 0.03 km single against 0.20 km doubled (0.10)


def _offer(offer_id: str, kw: float, price: float, factor: float = 1.0) -> FlexOffer:
    opt = OfferOption("o", {t: kw for t in STARTS}, price, min_activation_factor=factor)
    return FlexOffer(offer_id, offer_id, "station", (opt,), NOW, DELIVERY + timedelta(hours=2))


def _clear(view: GridView, factor: float = 1.0) -> Clearing:
    need = view.relief_needed_kw("station", 0.1)
    return clear_on_grid(
        [FlexRequest("r", "station", need, 100.0)],
        [_offer("cheap", 60.0, 1.0, factor), _offer("dear", 60.0, 2.0, factor)],
        SITES_OF,
        now=CLEAR_AT,
        options=ClearingOptions(),
        view=view,
        risk=0.1,
    )


def test_the_cheapest_offer_that_overloads_a_ring_branch_is_not_ordered_and_the_ac_check_passes(
    view: GridView,
) -> None:
    need = view.relief_needed_kw("station", 0.1)
    assert all(45.0 < kw < 60.0 for kw in need.values()), need  # the station is over; 60 kW would do
    gi = grid_inputs(view, [("cheap", "station", ["a1"]), ("dear", "station", ["b1"])], ["station"], 0.1)
    assert gi.sensitivity["cheap"][row_id("line:0", -1)] == pytest.approx(0.769, abs=1e-3)
    assert gi.sensitivity["cheap"][row_id("line:1", 1)] == pytest.approx(0.231, abs=1e-3)
    assert gi.sensitivity["dear"] == {row_id("line:5", -1): pytest.approx(1.0)}  # b1's spur
    got = _clear(view)
    assert [o.offer_id for o in got.orders] == ["dear"] and got.status == "cleared"
    assert got.violations == () and got.grid_rows == 6  # the five ring cables, b1's spur


def test_the_ac_check_reports_the_ring_branch_the_cheap_order_would_break(view: GridView) -> None:
    """60 kW less at a1: ring-0 carries 0.77 × 60 ≈ 46 kW more export, ~110 % (~85 % before)."""
    orders = clear(
        [FlexRequest("r", "station", {t: 50.0 for t in STARTS}, 100.0)],
        [_offer("cheap", 60.0, 1.0)],
        now=CLEAR_AT,
    ).orders
    violations = ac_check_of(view, SITES_OF)(orders)
    assert len(violations) == T and all(v.startswith("line:0 at ") for v in violations), violations
    assert all("100 % with the orders" in v for v in violations)
    pct = [float(v.split(": ")[1].split(" %")[0]) for v in violations]
    assert all(105.0 < p < 115.0 for p in pct), pct


def test_a_divisible_cheap_offer_is_ordered_up_to_the_ring_branch_room_over_its_ptdf(view: GridView) -> None:
    """One activation factor for all ISPs: the cheap offer fills ring-0's tightest ISP, the dear one the rest."""
    got = _clear(view, factor=0.0)
    by = {o.offer_id: o for o in got.orders}
    room = min(view.directed_headroom_kw("line:0", 0.1, -1).values())
    need = max(view.relief_needed_kw("station", 0.1).values())
    assert got.status == "cleared" and got.violations == ()
    assert 20.0 < room < 30.0, room
    for t in STARTS:
        assert by["cheap"].kw[t] == pytest.approx(
            room / (0.10 / 0.13), rel=1e-6
        )  # ring-0's room per kW at a1
        assert by["cheap"].kw[t] + by["dear"].kw[t] == pytest.approx(need, abs=1e-6)


def test_ptdf_rows_of_a_tree_are_the_radial_rows() -> None:
    """The hand-made tree with its paths as a PTDF (−1 below a branch): the same orders, 70 € an hour."""
    radial = grid_case.view()
    ptdf = np.zeros((3, 2))
    for j, bus in enumerate(radial.site_bus):
        ptdf[radial.path(bus), j] = -1.0
    as_mesh = GridView(
        radial.forecast, radial.interval_starts, radial.grid, radial.sites, radial.site_bus, radial.p50_kw,
        ptdf=ptdf, flow_p50_kw=radial.signed_p50_kw,
    )  # fmt: skip
    offers = [_offer("a", 40.0, 1.0, 0.0), _offer("b", 40.0, 2.0, 0.0)]
    sites = {"a": ["a1"], "b": ["b1"]}
    need = as_mesh.relief_needed_kw("station", 0.1)
    got = [
        clear_on_grid(
            [FlexRequest("r", "station", need, 100.0)],
            offers,
            sites,
            now=CLEAR_AT,
            options=ClearingOptions(),
            view=v,
            risk=0.1,
        )
        for v in (radial, as_mesh)
    ]
    assert [(o.offer_id, dict(o.kw)) for o in got[0].orders] == [
        (o.offer_id, dict(o.kw)) for o in got[1].orders
    ]
    assert {o.offer_id: o.kw[STARTS[0]] for o in got[1].orders} == {
        "a": pytest.approx(10.0),
        "b": pytest.approx(30.0),
    }
    assert got[0].grid_rows == got[1].grid_rows == 2


def test_the_service_hook_builds_a_meshed_view(ring: Region) -> None:
    """A meshed region's planner: a view with PTDFs, not 'unavailable'."""
    fc = ProbabilisticCongestion(ring, [0, 1, 2]).forecast(P50, SIGMA, ForecastOptions(n_scenarios=10))
    latest = LatestForecast(fc, DELIVERY, 900.0, NOW)
    planner = SimpleNamespace(
        region=ring, sites=[SimpleNamespace(region_site=i, site=s) for i, s in enumerate(SITES)]
    )
    builder = ViewBuilder()
    got = builder.view(latest, SimpleNamespace(site_forecast_kw=P50), planner)
    assert builder.unavailable is None and got is not None and got.ptdf is not None
    assert got.ptdf.shape == (ring.grid.n_branch, 3) and got.power_flow is not None
    assert got.signed_p50_kw[0, ring.grid.branch_names.index("line:0")] == pytest.approx(
        -0.769 * 205.0, rel=1e-3
    )


def test_inside_a_mesh_an_offer_covers_its_congestion_point_by_its_ptdf() -> None:
    """`loop_two_feeds`: L01 (rated 30 %) is over; a site at bus 1 relieves it by 0.686 kW per kW, bus 2 by 0.392.

    The cheaper 800 kW (bus 1) is ordered in full and relieves 549 kW; the rest of the ~563 kW
    need comes from bus 2 at 1 / 0.392 kW per kW, not 1:1 as a tree would count it.
    """
    region = meshed_region(loop_two_feeds())
    assert isinstance(region.grid, DcGrid)
    n = region.n_sites
    p50 = np.tile(np.resize([900.0, 600.0, 1000.0, 700.0, 400.0, 1300.0], n), (T, 1))
    fc = ProbabilisticCongestion(region, list(range(n))).forecast(
        p50, np.full((T, n), 10.0), ForecastOptions(n_scenarios=20)
    )
    site_bus = tuple(int(b) for b in region.site_bus)
    ptdf, flows = meshed_view_parts(region.grid, site_bus, p50)
    sites = tuple(f"s{i}" for i in range(n))
    view = GridView(
        fc, STARTS, region.grid, sites, site_bus, p50, pgm_power_flow(region, list(range(n))), ptdf, flows
    )
    need = view.relief_needed_kw("l01", 0.1)
    assert all(500.0 < kw < 650.0 for kw in need.values()), need
    sites_of = {"o0": ["s0"], "o1": ["s1"]}
    gi = grid_inputs(view, [(o, "l01", s) for o, s in sites_of.items()], ["l01"], 0.1)
    k = region.grid.branch_names.index("line:0")
    assert gi.cover_per_kw == {"o0": pytest.approx(-ptdf[k, 0]), "o1": pytest.approx(-ptdf[k, 1])}
    assert gi.cover_per_kw["o0"] == pytest.approx(0.686, abs=1e-3) and gi.cover_per_kw["o1"] == pytest.approx(
        0.392, abs=1e-3
    )
    offers = [
        FlexOffer(
            o,
            o,
            "l01",
            (OfferOption("o", {t: 800.0 for t in STARTS}, price, 0.0),),
            NOW,
            DELIVERY + timedelta(hours=2),
        )
        for o, price in (("o0", 1.0), ("o1", 1.5))
    ]
    got = clear_on_grid(
        [FlexRequest("r", "l01", need, 100.0)],
        offers,
        sites_of,
        now=CLEAR_AT,
        options=ClearingOptions(),
        view=view,
        risk=0.1,
    )
    by = {o.offer_id: o.kw[STARTS[0]] for o in got.orders}
    assert got.status == "cleared" and got.violations == () and got.shortfall_kw == {}
    assert by["o0"] == pytest.approx(800.0)
    worst = max(need.values())
    assert by["o1"] == pytest.approx(
        (worst - 800.0 * gi.cover_per_kw["o0"]) / gi.cover_per_kw["o1"], rel=1e-6
    )
