"""GridLimits from the region's pandapower net, config overrides, envelopes and violations by name."""

from __future__ import annotations

import copy
import functools
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from cloud_controller.config import CloudConfig, GridConfig
from cloud_controller.grid import Region, build_schutterwald_region
from cloud_controller.grid.limits import Envelope
from cloud_controller.grid.limits_check import branch_violations, interval_starts, powerflow_violations
from cloud_controller.grid.limits_config import LimitsBook, limits_for_region, parse_envelopes
from cloud_controller.grid.powerflow import PowerFlowResult
from protocols.errors import ConfigError

T0 = datetime(2026, 12, 2, 16, tzinfo=UTC)


@functools.cache
def cached_region() -> Region:
    """The bundled region, built once per test session (the limits, API and planner tests share it)."""
    return build_schutterwald_region()


@pytest.fixture(scope="module")
def region() -> Region:
    return cached_region()


def _grid(doc: dict[str, object]) -> GridConfig:
    return CloudConfig.model_validate({"grid": doc}).grid


def test_ratings_match_the_hand_computed_numbers(region: Region) -> None:
    limits = limits_for_region(region, station_limit_kw=300.0)
    # T_idx_118: sn_mva 0.63, one unit, no max_loading_percent -> 630 kW
    tr = limits.branches["T_idx_118"]
    assert (tr.kind, tr.ref, tr.source) == ("trafo", "trafo:7", "net")
    assert tr.rating_kw == pytest.approx(630.0)
    assert limits.branches["HV/MV"].rating_kw == pytest.approx(25_000.0)
    # line 32 (L_w318873043): 0.142 kA x 0.4 kV x sqrt(3) = 98.38 kW
    ln = limits.branches["L_w318873043"]
    assert ln.rating_kw == pytest.approx(0.142 * 0.4 * math.sqrt(3) * 1e3) == pytest.approx(98.3805, abs=1e-4)
    band = limits.buses["AB_w33105579"]
    assert (band.v_min_pu, band.v_max_pu, band.source) == (0.95, 1.05, "default")
    assert (limits.hvmv, limits.station_limit_kw) == ("HV/MV", 300.0)
    # every branch of the radial model has its limit, found by its "<table>:<index>" too
    assert all(limits.resolve(ref) for ref in region.grid.branch_names)
    assert limits.resolve("trafo:7") == "T_idx_118"


def test_max_loading_percent_and_voltage_columns_of_the_net_are_used(region: Region) -> None:
    net = copy.deepcopy(region.net)
    net.trafo["max_loading_percent"] = np.nan
    net.trafo.loc[7, "max_loading_percent"] = 80.0
    net.bus["min_vm_pu"] = np.nan
    net.bus.loc[2067, "min_vm_pu"] = 0.97
    from cloud_controller.grid.limits import limits_from_pandapower

    limits = limits_from_pandapower(net)
    assert limits.branches["T_idx_118"].rating_kw == pytest.approx(504.0)
    assert limits.branches["T_idx_80"].rating_kw == pytest.approx(630.0)
    assert (limits.buses["AB_w33105579"].v_min_pu, limits.buses["AB_w33105579"].source) == (0.97, "net")


def test_config_overrides_replace_ratings_and_bands(region: Region) -> None:
    grid = _grid(
        {
            "limits": {
                "T_idx_118": {"max_loading_pct": 50},
                "line:32": {"max_kw": 40},
                "AB_w33105579": {"v_min_pu": 0.96},
            }
        }
    )
    limits = limits_for_region(region, grid)
    assert limits.branches["T_idx_118"].rating_kw == pytest.approx(315.0)
    assert (limits.branches["L_w318873043"].rating_kw, limits.branches["L_w318873043"].source) == (
        40.0,
        "override",
    )
    assert (limits.buses["AB_w33105579"].v_min_pu, limits.buses["AB_w33105579"].v_max_pu) == (0.96, 1.05)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {"limits": {"T_idx_181": {"max_kw": 1}}},
            "grid.limits.T_idx_181: unknown grid element 'T_idx_181' (did you mean 'T_idx_118'?)",
        ),
        ({"limits": {"AB_w33105579": {"max_kw": 1}}}, "is a bus: it has a voltage band, no rating"),
        ({"limits": {"T_idx_118": {"v_max_pu": 1.1}}}, "is a branch: it has no voltage band"),
        (
            {
                "envelopes": [
                    {
                        "element": "T_idx_8",
                        "from": "2026-12-02T17:00Z",
                        "until": "2026-12-02T18:00Z",
                        "max_kw": 1,
                    }
                ]
            },
            "grid.envelopes[0].element: unknown grid element 'T_idx_8' (did you mean 'T_idx_80'?)",
        ),
    ],
    ids=["unknown-name", "rating-on-a-bus", "band-on-a-branch", "unknown-envelope-element"],
)
def test_config_errors_name_the_key_and_the_element(
    region: Region, doc: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=None) as err:
        limits_for_region(region, _grid(doc), file="cloud.yaml")
    assert message in str(err.value)
    assert "cloud.yaml" in str(err.value)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"element": "T_idx_80", "from": "2026-12-02T17:00", "until": "2026-12-02T18:00Z", "max_kw": 1},
            "timezone",
        ),
        (
            {"element": "T_idx_80", "from": "2026-12-02T18:00Z", "until": "2026-12-02T17:00Z", "max_kw": 1},
            "not after from",
        ),
        (
            {"element": "T_idx_80", "from": "2026-12-02T17:00Z", "until": "2026-12-02T18:00Z"},
            "exactly one of",
        ),
        (
            {"element": "T_idx_80", "from": "2026-12-02T17:00Z", "until": "2026-12-02T18:00Z", "max_kv": 1},
            "max_kv",
        ),
    ],
    ids=["naive-time", "until-before-from", "no-cap", "misspelt-key"],
)
def test_invalid_envelopes_are_refused_with_the_entry(entry: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_envelopes([entry])
    assert message in str(err.value)
    assert "envelopes[0]" in str(err.value)


def test_an_envelope_caps_its_element_only_while_in_force_and_expires(region: Region) -> None:
    book = LimitsBook(limits_for_region(region))
    book.set_operator(
        parse_envelopes(
            [
                {
                    "element": "T_idx_118",
                    "from": "2026-12-02T17:00Z",
                    "until": "2026-12-02T18:00Z",
                    "max_kw": 200,
                },
                {
                    "element": "HV/MV",
                    "from": "2026-12-02T16:00Z",
                    "until": "2026-12-02T16:30Z",
                    "max_loading_pct": 1,
                },
            ]
        )
    )
    limits = book.current(T0)
    starts = interval_starts(T0, 12, 900.0)  # 16:00 .. 18:45
    r = limits.ratings_kw(["trafo:7", "HV/MV", "T_idx_80"], starts, 900.0)
    assert r[:, 0].tolist() == [630.0] * 4 + [200.0] * 4 + [630.0] * 4
    assert r[:, 1].tolist() == [250.0] * 2 + [25_000.0] * 10
    assert r[:, 2].tolist() == [630.0] * 12
    # a part-interval overlap caps the whole interval (16:50-17:05 lies in 16:45-17:00 and 17:00-17:15)
    assert limits.rating_kw("T_idx_118", T0 + timedelta(minutes=50), T0 + timedelta(minutes=65)) == 200.0
    later = book.current(datetime(2026, 12, 2, 18, tzinfo=UTC))
    assert later.envelopes == ()
    with pytest.raises(ConfigError):
        Envelope("T_idx_118", T0, T0, max_kw=1.0)


def test_branch_violations_are_named_per_interval(region: Region) -> None:
    limits = limits_for_region(region).with_envelopes(
        [Envelope("T_idx_80", T0 + timedelta(minutes=15), T0 + timedelta(minutes=30), max_kw=100.0)]
    )
    starts = interval_starts(T0, 3, 900.0)
    flows = np.array([[150.0, 99.0], [150.0, -99.0], [50.0, 10.0]])  # T_idx_80, line 32
    found = branch_violations(limits, ["trafo:11", "line:32"], flows, starts, 900.0)
    assert [(v.element, v.kind, v.start, v.value, round(v.limit, 2), v.unit) for v in found] == [
        ("L_w318873043", "line_loading", starts[0], 99.0, 98.38, "kW"),
        ("L_w318873043", "line_loading", starts[1], 99.0, 98.38, "kW"),
        ("T_idx_80", "trafo_loading", starts[1], 150.0, 100.0, "kW"),
    ]


def test_powerflow_violations_name_transformers_and_buses(region: Region) -> None:
    limits = limits_for_region(region)
    starts = interval_starts(T0, 2, 900.0)
    res = PowerFlowResult(
        p_root_kw=np.zeros(2),
        q_root_kvar=np.zeros(2),
        p_load_kw=np.zeros(2),
        trafo_loading=np.array([[0.5, 1.2], [0.5, 0.9]]),
        trafo_names=("trafo:12", "trafo:7"),
        line_loading_max=np.zeros(2),
        v_min_pu=np.zeros(2),
        v_max_pu=np.zeros(2),
        failed_steps=np.zeros(0, dtype=np.int64),
        bus_vm_pu=np.array([[1.0, 0.94], [1.06, 1.0]]),
        bus_idx=np.array([2067, 2068], dtype=np.int64),
    )
    found = powerflow_violations(limits, res, starts, 900.0)
    assert [(v.element, v.kind, v.start, round(v.value, 3), v.limit) for v in found] == [
        ("AB_w33105568", "voltage_low", starts[0], 0.94, 0.95),
        ("T_idx_118", "trafo_loading", starts[0], 756.0, 630.0),
        ("AB_w33105579", "voltage_high", starts[1], 1.06, 1.05),
    ]
