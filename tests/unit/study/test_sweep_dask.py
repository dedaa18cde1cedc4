"""A sweep on a Dask LocalCluster gives the numbers of the same points run serially.

The default-run variant sweeps the EV share of eight households over one winter week
without storage (no OPF: a point costs its profiles, ~1 s) on a cluster of threads
(processes take tens of seconds to start and import on a loaded 2-core machine); the
slow one sweeps battery size and EV share of the whole region's quick weeks with Stor and
ProA+ProB (the OPF) on 2 worker processes, as `gridflex study --sweep` does.
"""

from __future__ import annotations

from typing import Any

import pytest

from cloud_controller.study.config import StudyConfig
from cloud_controller.study.sweep import SweepPoint, parse_axis, sweep_points, sweep_row
from cloud_controller.study.sweep_run import run_sweep, run_sweep_serial

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> StudyConfig:
    """Eight households on one MV/LV station, one winter week, no storage, critical stress.

    A pandapower JSON of its own (`network_json`): reading `lv_schutterwald` alone costs
    more than this whole sweep.
    """
    import pandapower as pp

    net = pp.create_empty_network()
    mv = pp.create_bus(net, vn_kv=20.0, name="MV")
    lv = pp.create_bus(net, vn_kv=0.4, name="LV")
    pp.create_ext_grid(net, mv, vm_pu=1.0)
    pp.create_transformer(net, mv, lv, std_type="0.25 MVA 20/0.4 kV", name="S1")
    prev = lv
    for i in range(4):
        bus = pp.create_bus(net, vn_kv=0.4)
        pp.create_line(net, prev, bus, length_km=0.03, std_type="NAYY 4x150 SE")
        for j in range(2):
            pp.create_load(net, bus, p_mw=0.002, name=f"h{i}{j}")
        prev = bus
    path = tmp_path_factory.mktemp("sweep") / "tiny_net.json"
    pp.to_json(net, str(path))
    return StudyConfig.model_validate(
        {
            "network_json": str(path),
            "station_roles": {"S1": "focus_ev"},
            "quick_weeks": ("01-13",),
            "scenarios": (),  # the status quo and 2030 without control only
            "stress": ("critical",),
        },
        strict=False,
    )


def _rows(points: list[SweepPoint], summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [sweep_row(p, s) for p, s in zip(points, summaries, strict=True)]


def _points(base: StudyConfig, *specs: str) -> list[SweepPoint]:
    return sweep_points(base, [parse_axis(s, base) for s in specs])


def test_two_points_on_a_thread_cluster_equal_the_serial_runs(tiny: StudyConfig) -> None:
    points = _points(tiny, "mix.*.ev=0.1,0.9")
    seen: list[tuple[str, int, int]] = []
    on_dask = run_sweep(
        points,
        quick=True,
        validate=False,
        n_workers=2,
        processes=False,
        on_done=lambda p, _s, done, total: seen.append((p.name, done, total)),
    )
    serial = run_sweep_serial(points, quick=True, validate=False)
    assert _rows(points, on_dask) == _rows(points, serial)
    assert sorted(name for name, _, _ in seen) == sorted(p.name for p in points)
    assert [(done, total) for _, done, total in seen] == [(1, 2), (2, 2)]
    few, many = on_dask
    # the swept key reached the runs: 1 EV of 8 households, then 7, against the same 2024 limit
    assert (few["households"]["ev"], many["households"]["ev"]) == (1, 7)
    assert few["limits_kw"] == many["limits_kw"]
    few_nc, many_nc = (s["results"]["critical"]["no_control"]["load_violations"] for s in on_dask)
    assert 0 < few_nc < many_nc


@pytest.mark.slow
def test_four_points_of_the_quick_weeks_on_two_worker_processes_equal_the_serial_runs() -> None:
    base = StudyConfig.model_validate({"scenarios": ("stor", "stor_proa_prob")}, strict=False)
    points = _points(base, "sizes.battery_kwh=8,24", "mix.*.ev=0.15,0.35")
    on_dask = run_sweep(points, quick=True, validate=False, n_workers=2, processes=True)
    serial = run_sweep_serial(points, quick=True, validate=False)
    rows = _rows(points, on_dask)
    assert rows == _rows(points, serial)
    assert {r["households"]["households"] for r in rows} == {319}
    assert len({r["households"]["ev"] for r in rows}) == 2  # the EV share changed the population
    for row in rows:
        assert set(row["results"]) == {"safe", "near_critical", "critical"}
        assert row["results"]["critical"]["no_control"]["load_violations"] > 0
