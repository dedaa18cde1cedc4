"""`--sweep KEY=V1,V2,…`: keys checked against the study model, values typed, points validated."""

from __future__ import annotations

import pytest

from cloud_controller.study.config import StudyConfig
from cloud_controller.study.sweep import Scalar, SweepAxis, parse_axis, sweep_points, sweep_row
from protocols.errors import ConfigError

BASE = StudyConfig()


@pytest.mark.parametrize(
    ("spec", "key", "values"),
    [
        ("sizes.battery_kwh=8,16,32", "sizes.battery_kwh", (8.0, 16.0, 32.0)),
        ("mix.reference.ev = 0.1, 0.25", "mix.reference.ev", (0.1, 0.25)),
        ("mix.*.battery_of_pv=1", "mix.*.battery_of_pv", (1.0,)),
        ("seed=1,2", "seed", (1, 2)),
        ("opf_network=station,full", "opf_network", ("station", "full")),
        ("opf_by_site=true,false", "opf_by_site", (True, False)),
        ("network_json=none,net.json", "network_json", (None, "net.json")),
    ],
    ids=["float", "dict-role", "wildcard", "int", "literal", "bool", "optional"],
)
def test_values_are_parsed_to_the_fields_type(spec: str, key: str, values: tuple[Scalar, ...]) -> None:
    axis = parse_axis(spec, BASE)
    assert axis == SweepAxis(key, values)
    assert [type(v) for v in axis.values] == [type(v) for v in values]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "sizes.batery_kwh=8",
            "--sweep:sizes.batery_kwh: unknown key 'batery_kwh' (did you mean 'battery_kwh'?)",
        ),
        ("sises.battery_kwh=8", "--sweep:sises: unknown key 'sises' (did you mean 'sizes'?)"),
        ("mix.refrence.ev=0.1", "--sweep:mix.refrence: unknown key 'refrence' (did you mean 'reference'?)"),
        ("zzz=1", "--sweep:zzz: unknown key 'zzz'"),
        ("sizes=1", "--sweep:sizes: is a section, not a value; its keys: pv_2024_kwp"),
        ("seed.x=1", "--sweep:seed.x: 'seed' is a value, it has no key 'x'"),
        ("stress=safe", "--sweep:stress: is a list, not a value"),
        ("sizes.battery_kwh", "--sweep:sizes.battery_kwh: expected KEY=V1,V2"),
        ("sizes.battery_kwh=8,,16", "--sweep:sizes.battery_kwh: empty value"),
        ("sizes.battery_kwh=8,8", "--sweep:sizes.battery_kwh: repeated value"),
        ("sizes.battery_kwh=big", "--sweep:sizes.battery_kwh: 'big': Input should be a valid number"),
        ("opf_network=mesh", "--sweep:opf_network: 'mesh': Input should be 'station' or 'full'"),
        ("sizes..battery_kwh=8", "--sweep:sizes..battery_kwh: empty part in the key"),
    ],
    ids=[
        "misspelt-field",
        "misspelt-section",
        "misspelt-role",
        "unknown-no-guess",
        "section",
        "below-a-value",
        "list-field",
        "no-values",
        "empty-value",
        "repeated-value",
        "not-a-number",
        "not-a-choice",
        "empty-part",
    ],
)
def test_a_bad_option_is_an_error_naming_the_key(spec: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_axis(spec, BASE)
    assert str(err.value).startswith(message)


def test_points_are_the_grid_first_axis_slowest_with_overrides_applied() -> None:
    axes = [parse_axis("sizes.battery_kwh=8,32", BASE), parse_axis("mix.*.ev=0.1,0.2,0.3", BASE)]
    points = sweep_points(BASE, axes)
    assert [p.index for p in points] == [1, 2, 3, 4, 5, 6]
    assert [(p.overrides["sizes.battery_kwh"], p.overrides["mix.*.ev"]) for p in points] == [
        (8.0, 0.1),
        (8.0, 0.2),
        (8.0, 0.3),
        (32.0, 0.1),
        (32.0, 0.2),
        (32.0, 0.3),
    ]
    p = points[4]
    assert p.config.sizes.battery_kwh == 32.0
    assert {role: mix.ev for role, mix in p.config.mix.items()} == {
        "reference": 0.2,
        "focus_pv": 0.2,
        "focus_ev": 0.2,
    }
    # everything not swept is the base's
    assert p.config.mix["focus_pv"].pv == BASE.mix["focus_pv"].pv == 0.60
    assert p.config.sizes.battery_kw == BASE.sizes.battery_kw
    assert p.name == "p05_sizes.battery_kwh=32_mix.all.ev=0.2"


def test_a_single_role_override_leaves_the_other_roles_alone() -> None:
    (point,) = sweep_points(BASE, [parse_axis("mix.focus_ev.ev=0.5", BASE)])
    assert point.config.mix["focus_ev"].ev == 0.5
    assert point.config.mix["reference"].ev == BASE.mix["reference"].ev == 0.25


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (
            ["mix.*.ev=0.2,1.5"],
            "--sweep:mix.reference.ev: Input should be less than or equal to 1 (at mix.*.ev=1.5)",
        ),
        (
            ["sizes.battery_kwh=-1"],
            "--sweep:sizes.battery_kwh: Input should be greater than 0 (at sizes.battery_kwh=-1)",
        ),
        (
            ["mpc.replan_h=6,12", "mpc.horizon_h=6"],
            "--sweep: Value error, mpc.replan_h is longer than mpc.horizon_h (at mpc.replan_h=12, mpc.horizon_h=6)",
        ),
        (["seed=1", "seed=2"], "--sweep:seed: given more than once"),
    ],
    ids=["share-above-one", "negative-size", "model-rule", "key-twice"],
)
def test_a_point_the_model_refuses_is_an_error_naming_key_and_point(specs: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        sweep_points(BASE, [parse_axis(s, BASE) for s in specs])
    assert str(err.value) == message


def test_a_row_keeps_counts_and_shares_not_timings() -> None:
    (point,) = sweep_points(BASE, [parse_axis("sizes.battery_kwh=8", BASE)])
    summary = {
        "households": {"households": 319},
        "limits_kw": {"critical": 278.3},
        "wall_s": 12.5,
        "results": {
            "critical": {
                "no_control": {
                    "load_violations": 183,
                    "feed_in_violations": 20,
                    "max_load_pct": 211.0,
                    "solve_s": 0.0,
                },
                "stor": {
                    "load_violations": 119,
                    "feed_in_violations": 9,
                    "load_violations_resolved_pct": 35.0,
                    "max_load_pct": 190.1,
                    "solve_s": 3.2,
                },
            }
        },
    }
    row = sweep_row(point, summary)
    assert row["overrides"] == {"sizes.battery_kwh": 8.0}
    assert row["results"]["critical"]["stor"] == {
        "load_violations": 119,
        "feed_in_violations": 9,
        "load_violations_resolved_pct": 35.0,
        "max_load_pct": 190.1,
    }
    assert row["results"]["critical"]["no_control"]["load_violations_resolved_pct"] is None
    assert "wall_s" not in row


def test_a_wildcard_over_an_empty_mapping_is_an_error() -> None:
    with pytest.raises(ConfigError) as err:
        parse_axis("mix.*.ev=0.1", StudyConfig(mix={}))
    assert str(err.value) == "--sweep:mix.*: is empty in the study config: nothing to set"
