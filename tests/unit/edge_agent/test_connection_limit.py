"""The connection limit's pure decision, with numbers: order of measures, §14a floor, hysteresis, caps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from edge_agent.connection_limit import (
    Lever,
    Limits,
    Override,
    SiteCap,
    decide_limit,
    effective_limits,
    tighter_kw,
)

NOW = datetime(2030, 1, 15, 18, tzinfo=UTC)
LIMITS = Limits(import_max_kw=10.0, export_max_kw=5.0, margin_kw=0.5)  # aim 9.75 / -4.75


def _bat(p_kw: float = 0.0, low: float = -5.0, high: float = 5.0, target: float | None = None) -> Lever:
    return Lever("bat1", "battery", p_kw, low, high, target)


def _ev(p_kw: float = 11.0, target: float | None = None) -> Lever:
    return Lever("ev1", "ev", p_kw, 4.2, 11.0, target)


def _hp(p_kw: float = 6.0) -> Lever:
    return Lever("hp1", "hp", p_kw, 4.2, 9.0)


def _pv(p_kw: float = -8.0) -> Lever:
    return Lever("pv1", "pv", p_kw, 0.0, 8.0)


IMPORT_CASES = [
    # id, net kW, levers, overrides before, expected overrides after (asset -> kW), excess kW;
    # the import limit is 10 kW (aim 9.75), 3 kW where the id says "floor"
    ("battery_first", 12.0, [_bat(), _ev()], {}, {"bat1": -2.25}, 0.0),
    ("battery_then_ev", 12.0, [_bat(low=-1.0), _ev()], {}, {"bat1": -1.0, "ev1": 9.75}, 0.0),
    ("charging_battery_stops_and_discharges", 16.5, [_bat(p_kw=5.0), _ev()], {}, {"bat1": -1.75}, 0.0),
    (
        "empty_battery_only_stops_charging",
        13.0,
        [_bat(p_kw=2.0, low=0.0), _ev()],
        {},
        {"bat1": 0.0, "ev1": 9.75},
        0.0,
    ),
    (
        "ev_at_minimum_then_hp",
        10.75,
        [_bat(low=0.0), _ev(p_kw=4.2), _hp(p_kw=6.0)],
        {"ev1": Override(4.2, "import")},
        {"ev1": 4.2, "hp1": 5.0},
        0.0,
    ),
    # 12 kW with 3 kW allowed: the EV goes to its 4.2 kW minimum and not lower; 2.2 kW stay above
    ("floor_is_never_undercut", 12.0, [_ev()], {}, {"ev1": 4.2}, 2.2),
    (
        "floor_held_excess_still_reported",
        5.2,
        [_ev(p_kw=4.2)],
        {"ev1": Override(4.2, "import")},
        {"ev1": 4.2},
        2.2,
    ),
    (
        "dead_band_holds",
        9.6,
        [_bat(p_kw=-2.0), _ev()],
        {"bat1": Override(-2.0, "import")},
        {"bat1": -2.0},
        0.0,
    ),
    # released last-engaged first, by the headroom only (8 -> aim 9.75: 1.75 kW back)
    (
        "release_last_engaged_first",
        8.0,
        [_bat(p_kw=-1.0, low=-1.0), _ev(p_kw=8.0)],
        {"bat1": Override(-1.0, "import"), "ev1": Override(8.0, "import")},
        {"bat1": -1.0, "ev1": 9.75},
        0.0,
    ),
    (
        "release_drops_a_measure_past_its_free_value",
        8.0,
        [_bat(p_kw=-1.0, low=-1.0), _ev(p_kw=9.75)],
        {"bat1": Override(-1.0, "import"), "ev1": Override(9.75, "import")},
        {"bat1": -1.0},
        0.0,
    ),
    # a stale battery reading (charging +3) never loosens its written -5 kW discharge
    (
        "stale_battery_reading_does_not_loosen",
        11.0,
        [_bat(p_kw=3.0), _ev()],
        {"bat1": Override(-5.0, "import")},
        {"bat1": -5.0, "ev1": 9.75},
        0.0,
    ),
    ("cloud_cap_counts_as_the_ev_draw", 11.0, [_ev(p_kw=6.0, target=6.0)], {}, {"ev1": 4.75}, 0.0),
]


@pytest.mark.parametrize(
    ("net_kw", "levers", "before", "after", "excess_kw"),
    [c[1:] for c in IMPORT_CASES],
    ids=[c[0] for c in IMPORT_CASES],
)
def test_import_limit_decision(
    request: pytest.FixtureRequest,
    net_kw: float,
    levers: list[Lever],
    before: dict[str, Override],
    after: dict[str, float],
    excess_kw: float,
) -> None:
    import_max_kw = 3.0 if "floor" in request.node.callspec.id else 10.0
    decision = decide_limit(net_kw, Limits(import_max_kw, None, 0.5), levers, before)
    assert {a: o.value_kw for a, o in decision.overrides.items()} == pytest.approx(after)
    assert all(o.side == "import" for o in decision.overrides.values())
    assert decision.excess_kw == pytest.approx(excess_kw)
    for lever in levers:  # the §14a minimum is the floor of every EV/HP measure
        if lever.role in ("ev", "hp") and lever.asset in decision.overrides:
            assert decision.overrides[lever.asset].value_kw >= 4.2


def test_release_reports_the_dropped_asset_and_what_to_write() -> None:
    before = {"bat1": Override(-1.0, "import"), "ev1": Override(9.75, "import")}
    decision = decide_limit(8.0, LIMITS, [_bat(p_kw=-1.0, low=-1.0), _ev(p_kw=9.75)], before)
    assert decision.changed == ("ev1",) and decision.released == ("ev1",)
    assert decision.active  # the battery still holds
    again = decide_limit(8.0, LIMITS, [_bat(p_kw=-1.0, low=-1.0), _ev(p_kw=11.0)], decision.overrides)
    # one asset per poll: 8 -> 9.75 gives the battery 1.75 kW: past idle (0), so released too
    assert again.changed == ("bat1",) and not again.active


def test_hysteresis_no_oscillation_over_a_load_swing() -> None:
    """A load wobbling inside the band writes nothing; easing lands at the aim, not above the limit."""
    overrides: dict[str, Override] = {}
    writes: list[float | None] = []
    steps = [(2.0, 11.0), (1.9, 11.0), (2.1, 11.0), (1.85, 11.0), (2.0, 11.0), (0.0, 11.0), (0.0, 11.0)]
    steps += [(0.0, 0.0)]  # the car is full: nothing left to hold
    ev_cap = 11.0
    for load_kw, demand_kw in steps:
        ev_draw = min(demand_kw, ev_cap)
        d = decide_limit(load_kw + ev_draw, Limits(10.0, None, 0.5), [_ev(p_kw=ev_draw)], overrides)
        overrides = dict(d.overrides)
        ev_cap = overrides["ev1"].value_kw if "ev1" in overrides else 11.0
        writes += [overrides["ev1"].value_kw if "ev1" in overrides else None for _ in d.changed]
        assert load_kw + min(demand_kw, ev_cap) <= 10.0 + 1e-9  # within the limit after every poll
    # engaged once (13 -> 9.75 kW), eased once when the load left (cap 9.75), released when the car was full
    assert writes == pytest.approx([7.75, 9.75, None])


def test_export_limit_battery_charges_then_pv_is_curtailed() -> None:
    d = decide_limit(-9.0, LIMITS, [_bat(), _pv(-9.0)], {})
    assert {a: o.value_kw for a, o in d.overrides.items()} == pytest.approx({"bat1": 4.25})
    full = decide_limit(-9.0, LIMITS, [_bat(high=0.0), _pv(-8.0)], {})  # a full battery: PV is curtailed
    assert {a: o.value_kw for a, o in full.overrides.items()} == pytest.approx({"pv1": 3.75})
    assert all(o.side == "export" for o in full.overrides.values())
    eased = decide_limit(-3.0, LIMITS, [_bat(high=0.0), _pv(-3.75)], full.overrides)
    assert eased.overrides["pv1"].value_kw == pytest.approx(5.5)  # -3 -> aim -4.75: 1.75 kW more PV


def test_a_limit_that_ends_releases_its_measures_at_once() -> None:
    before = {"ev1": Override(6.0, "import"), "pv1": Override(3.0, "export")}
    d = decide_limit(-4.6, Limits(None, 5.0, 0.5), [_ev(p_kw=6.0), _pv(-3.0)], before)  # export held
    assert set(d.overrides) == {"pv1"} and d.released == ("ev1",)


def test_a_lever_that_cannot_be_read_keeps_its_measure() -> None:
    d = decide_limit(12.0, LIMITS, [_bat()], {"ev1": Override(6.0, "import")})
    assert d.overrides["ev1"] == Override(6.0, "import") and "ev1" not in d.changed
    assert d.overrides["bat1"].value_kw == pytest.approx(-2.25)  # the others still act
    eased = decide_limit(2.0, LIMITS, [], {"ev1": Override(6.0, "import")})
    assert eased.overrides == {"ev1": Override(6.0, "import")}  # not eased blind either


@pytest.mark.parametrize(
    ("static_kw", "cap_kw", "until_s", "expected_kw"),
    [
        (10.0, 6.0, 60, 6.0),
        (10.0, 12.0, 60, 10.0),
        (10.0, 6.0, -1, 10.0),
        (None, 6.0, 60, 6.0),
        (None, 6.0, 0, None),
    ],
    ids=["cap_tighter", "static_tighter", "cap_expired", "cap_alone", "cap_ends_at_valid_until"],
)
def test_effective_import_limit_is_the_tighter_of_static_and_valid_cap(
    static_kw: float | None, cap_kw: float, until_s: float, expected_kw: float | None
) -> None:
    cap = SiteCap(cap_kw, NOW + timedelta(seconds=until_s), "dso1")
    assert effective_limits(static_kw, 5.0, 0.5, cap, NOW).import_max_kw == expected_kw
    assert effective_limits(static_kw, 5.0, 0.5, None, NOW).import_max_kw == static_kw


def test_tighter_of_command_and_override() -> None:
    assert tighter_kw("ev", "import", 11.0, 6.0) == 6.0
    assert tighter_kw("battery", "import", 5.0, -2.0) == -2.0
    assert tighter_kw("battery", "export", -1.0, 3.0) == 3.0
    assert tighter_kw("pv", "export", 8.0, 4.0) == 4.0
