"""The offline twin of the closed loop: the controller against the same physics, no sockets.

What the live end-to-end test checks on one fleet, the twin checks on several: the
constructed congestion episode relieved by >= 80 % on each, at no cost in EV energy
delivered and little in heat still owed at the end of the day.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from cloud_controller.grid import Region, build_schutterwald_region
from gridflex.cli.twin import parse_hours, parse_seeds
from gridflex.loop.scenario import LoopSettings, build_scenario
from gridflex.loop.twin import run_twin

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def region() -> Region:
    return build_schutterwald_region()


# both fleets in the slow run (seed 1 also runs guarded and unguarded in the guard ablation)
@pytest.mark.parametrize("seed", [pytest.param(1, marks=pytest.mark.slow), 3])
def test_controller_relieves_the_episode_on_several_fleets(region: Region, seed: int) -> None:
    scenario = build_scenario(
        LoopSettings(n_sites=10, seed=seed, bacnet=False, congestion="threshold"), region
    )
    thr = scenario.threshold_kw
    assert thr is not None  # the constructed HV/MV threshold is what these tests judge
    without = run_twin(scenario, control=False)
    with_control = run_twin(scenario)
    # the twin's own no-control run agrees with the scenario's reference (same physics)
    reference = sum(t.root_p_kw > thr for t in scenario.no_control_truth)
    assert abs(without.overloads(thr) - reference) <= 1 and reference >= 8
    assert with_control.overloads(thr) <= 0.2 * without.overloads(thr)
    assert max(with_control.root_kw) < max(without.root_kw)
    assert with_control.ev_delivered_kwh == pytest.approx(without.ev_delivered_kwh, abs=1.0)
    assert with_control.heat_owed_kwh <= without.heat_owed_kwh + 6.0
    assert with_control.plans >= 48 and with_control.corrections > 0  # a plan per period, guard between


@pytest.mark.slow  # an ablation of the guard: runs seed 1 twice
def test_without_the_guard_the_plan_alone_relieves_less(region: Region) -> None:
    scenario = build_scenario(LoopSettings(n_sites=10, seed=1, bacnet=False, congestion="threshold"), region)
    thr = scenario.threshold_kw
    assert thr is not None
    guarded = run_twin(scenario)
    unguarded = run_twin(scenario, guard=False)
    assert unguarded.corrections == 0
    assert guarded.overloads(thr) < unguarded.overloads(thr)


def test_parse_seeds() -> None:
    assert parse_seeds("1-3,7, 2") == [1, 2, 3, 7]
    with pytest.raises(typer.BadParameter, match="not a seed"):
        parse_seeds("3-1")
    with pytest.raises(typer.BadParameter, match="no seeds"):
        parse_seeds(" , ")


def test_twin_command_writes_figures(tmp_path: Path) -> None:
    # The evening (16:00-20:00) holds the fleet's overloads; the default window is 12-24.
    window = ["--hours", "16-20"]
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "gridflex",
            "twin",
            "--sites",
            "4",
            "--seeds",
            "2",
            *window,
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    doc = json.loads((tmp_path / "twin.json").read_text())
    assert [f["seed"] for f in doc["fleets"]] == [2]  # ranges: test_parse_seeds
    assert all(f["overloads_without"] > 0 for f in doc["fleets"])
    assert (tmp_path / "twin.png").stat().st_size > 0
    assert "relieved" in r.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "gridflex", "twin", "--seeds", "x"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "not a seed" in bad.stdout + bad.stderr


def test_parse_hours_takes_a_window_and_refuses_bad_ones() -> None:
    assert parse_hours("15-21") == (15.0, 21.0)
    assert parse_hours("0-48") == (0.0, 48.0)
    for bad in ("21-15", "x", "10", "0-49", "-1-3"):
        with pytest.raises(typer.BadParameter):
            parse_hours(bad)
