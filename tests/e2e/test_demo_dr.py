"""`gridflex demo --dr` end to end: the closed loop (3 buildings on Modbus/BACnet, their agents, Mosquitto, the
controller on one SimClock) plus contracts, one DR request through the controller's API, its selection, the
commands to the battery, the measured delivery and the summary's DR section.

About 85 s of wall time (a minute of it the region, the scenario and the imported history), so marked slow;
the pure parts are tests/unit/loop/test_dr_event.py. 240x, not the demo's --quick 480x: at 480x one wall
second of command latency is 8 simulated minutes of a 15-minute interval.

The first event is 16:00-16:30, before the station's evening congestion; the second, 17:00-17:30, inside
it, where the planner used to drain the selected battery against T_idx_77 before the event: DR
reservations (cloud_controller/live/reservations.py, docs/dr.md §6) now ask the planner to keep its energy.
What the physics gives is asserted: each battery interval within the seed's 10 % of its setpoint, or the
battery on its floor; at 17:00, the first interval ≥ 90 % of its setpoint at the battery
(true with and without reservations: docs/dr.md §7).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from gridflex.cli.demo_dr import run_dr
from gridflex.loop.dr_event import DrEventSettings
from gridflex.loop.scenario import LoopSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: The simulated battery's own floor (simulators/devices/battery.py): below it, it cannot discharge.
BATTERY_FLOOR_PCT = 5.0


@pytest.mark.timeout(300)
async def test_dr_event_selected_activated_and_delivered(tmp_path: Path) -> None:
    settings = LoopSettings(
        n_sites=3, start_h=15.0, end_h=16.75, speed=240.0, poll_s=120.0, history_days=1, bacnet=True
    )
    event = DrEventSettings(
        start=settings.day + timedelta(hours=16), intervals=2, step_min=15, notice_s=2700.0
    )
    out = tmp_path / "demo-out"
    code = await run_dr(settings, event, out)
    dr = json.loads((out / "summary.json").read_text())["dr"]
    print(json.dumps({k: dr[k] for k in ("selection", "acks", "assets")}, indent=1))
    print(json.dumps(dr["delivery"]["per_interval"], indent=1))
    assert code == 0, dr["problems"]
    # the request: 40 % of the two contracted batteries (b002, b003: 5 kW each), every interval met
    assert dr["request"]["p_kw"] == 4.0
    assert (dr["status"], dr["final_status"]) == ("selected", "completed")
    sel = dr["selection"]
    assert sel["delivered_kw"] == [4.0, 4.0] and sel["unmet_kw"] == [0.0, 0.0]
    for k in range(2):
        assert sum(-s["kw"][k] for s in sel["sources"]) == pytest.approx(4.0, abs=1e-3)
    # every command the event sent was applied by its agent
    assert dr["commands_sent"] >= 2 and dr["acks"] == {"ok": dr["commands_sent"]}
    # the batteries followed their setpoints within 10 %, or sat on their floor, in every interval
    # they were selected for (the LP has several optimal answers: one battery may carry a whole
    # interval and the other the next, so a battery's row with 0 kW selected asks nothing of it)
    batteries = [a for a in dr["assets"] if a["kind"] == "battery" and a["selected_kw"] != 0.0]
    assert batteries
    within = [a for a in batteries if a["error_pct"] is not None and abs(a["error_pct"]) <= 10.0]
    floored = [
        a for a in batteries if a["soc_min_pct"] is not None and a["soc_min_pct"] <= BATTERY_FLOOR_PCT + 0.5
    ]
    assert within, batteries  # at least one interval as selected
    assert {id(a) for a in within} | {id(a) for a in floored} == {id(a) for a in batteries}, batteries
    # the site meters' delivery, against the baseline measured at selection time: reported, positive
    rows = dr["delivery"]["per_interval"]
    assert [r["step"] for r in rows] == [0, 1]
    assert dr["delivery"]["totals"]["delivered_kwh"] > 0
    assert all(r["selected_kw"] == pytest.approx(4.0, abs=1e-3) for r in rows)
    assert all(v.get("reason") for v in dr["comfort_vetoes"])  # a veto, if any, says why
    md = (out / "summary.md").read_text()
    assert "## Demand response event" in md and "Verdict: ok" in md


@pytest.mark.timeout(400)
async def test_an_evening_peak_event_is_activated_and_its_first_interval_delivered_at_the_battery(
    tmp_path: Path,
) -> None:
    """17:00-17:30, inside T_idx_77's evening congestion: selected, activated, delivered at the battery.

    With DR reservations the planner keeps selected kWh / η + floor in the battery (20.5 % of
    13.5 kWh here) and plans the DR setpoint as a fixed injection, and the guard's extra discharge
    against T_idx_77 cannot take the battery under that floor before the period ends (docs/dr.md
    §6-7). Before that bound the battery gave 61-94 % over four runs (it reached the event just
    under the floor); with it 97.1-101.3 % over five (load 3-10). Asserted: the first interval
    ≥ 90 % of its setpoint above the floor, and the whole event ≥ 90 % of the selected energy at
    the battery; the site meters' figures are printed.
    """
    # 120x and 50 min of notice (20 over the contracts' 30): the post may lag ~10 wall seconds on a loaded machine
    settings = LoopSettings(
        n_sites=3, start_h=15.75, end_h=17.75, speed=120.0, poll_s=120.0, history_days=1, bacnet=True
    )
    event = DrEventSettings(
        start=settings.day + timedelta(hours=17), intervals=2, step_min=15, notice_s=3000.0
    )
    out = tmp_path / "demo-out"
    await run_dr(settings, event, out)
    dr = json.loads((out / "summary.json").read_text())["dr"]
    print(json.dumps({k: dr[k] for k in ("selection", "acks", "assets")}, indent=1))
    print(json.dumps(dr["delivery"], indent=1))
    assert (dr["status"], dr["final_status"]) == ("selected", "completed"), dr["problems"]
    batteries = [a for a in dr["assets"] if a["kind"] == "battery"]
    assert batteries and all(a["measured_kw"] is not None for a in batteries)
    first = [a for a in batteries if a["step"] == 0]
    assert sum(-a["measured_kw"] for a in first) >= 0.9 * sum(-a["selected_kw"] for a in first), first
    selected_kwh = sum(-a["selected_kw"] for a in batteries) * 0.25
    measured_kwh = sum(-a["measured_kw"] for a in batteries) * 0.25
    print(f"at the batteries: {measured_kwh:.3f} kWh of {selected_kwh:.3f} selected")
    assert selected_kwh > 1.0
    assert measured_kwh >= 0.9 * selected_kwh  # the 90 %: the reserved energy reached the event
    # the first interval starts above the battery's floor: its energy was kept for the event
    assert all(a["soc_min_pct"] is None or a["soc_min_pct"] > BATTERY_FLOOR_PCT + 0.5 for a in first)
