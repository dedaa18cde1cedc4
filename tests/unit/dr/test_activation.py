"""DR activation, pure: a selection's sources → per-interval commands carrying the request id; the planner's
commands to held assets dropped; the request id signed, and absent from the wire and signature when unset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cloud_controller.dr.activation import (
    actuation,
    filter_planner,
    interval_bounds,
    release_commands,
    step_commands,
)
from cloud_controller.live.types import AssetRef, SiteRef
from protocols.codec import decode, encode
from protocols.messages import Ack, Command
from protocols.signing import SigningKey, canonical_bytes, verify
from protocols.topics import site_topic

T0 = datetime(2030, 1, 15, 17, 0, tzinfo=UTC)
KEY = bytes.fromhex("22" * 32)
SITE = SiteRef(
    "s1",
    0,
    (
        AssetRef("meter", "meter"),
        AssetRef("bat1", "battery", 5.0, 10.0),
        AssetRef("ev1", "ev", 11.0, None, 4.2),
    ),
)


def test_battery_selection_becomes_one_signed_command_per_interval() -> None:
    src = {"site": "s1", "asset": "bat1", "kind": "battery", "kw": [-3.0, -2.25]}
    act = actuation(src, SITE, {})
    assert not isinstance(act, str)
    assert (act.kind, act.values, act.release) == ("p_setpoint_kw", (-3.0, -2.25), 0.0)
    bounds = interval_bounds(T0, T0 + timedelta(minutes=30), 2)
    assert bounds[1] == (T0 + timedelta(minutes=15), T0 + timedelta(minutes=30))
    keys = {"s1": SigningKey(KEY, "k1")}
    cmds = [step_commands(T0, "req-1", k, bounds[k], [act], keys)[0] for k in range(2)]
    assert [(c.asset, c.kind, c.value) for c in cmds] == [
        ("bat1", "p_setpoint_kw", -3.0),
        ("bat1", "p_setpoint_kw", -2.25),
    ]
    assert [(c.valid_from, c.valid_until) for c in cmds] == bounds  # valid over exactly its interval
    assert {c.request_id for c in cmds} == {"req-1"} and cmds[0].cmd_id == "dr-req-1-0-s1-bat1"
    assert all(c.kid == "k1" and verify(c, KEY) for c in cmds)
    # the request id is signed: moving a command to another request breaks its signature
    assert not verify(cmds[0].model_copy(update={"request_id": "req-2"}), KEY)
    # and it survives the wire
    back = decode(site_topic("s1", "cmd"), encode(cmds[0]))
    assert isinstance(back, Command) and back.request_id == "req-1" and verify(back, KEY)


def test_ev_limit_moves_from_its_power_at_selection_and_releases_to_nominal() -> None:
    src = {"site": "s1", "asset": "ev1", "kind": "load", "kw": [-3.0, -8.0]}
    act = actuation(src, SITE, {"ev1/p_kw": 7.0})
    assert not isinstance(act, str)
    assert (act.kind, act.values, act.release) == ("p_limit_kw", (4.0, 0.0), 11.0)  # 7-3, max(7-8, 0)
    rel = release_commands(T0, "req-1", [act], {}, hold_s=120)
    assert [(c.kind, c.value, c.request_id) for c in rel] == [("p_limit_kw", 11.0, "req-1")]
    assert rel[0].valid_until - rel[0].valid_from == timedelta(seconds=120)


def test_zone_setpoint_and_fan_speed_when_the_selection_carries_them() -> None:
    site = SiteRef("s2", 1, (AssetRef("hp1", "hp", 3.0), AssetRef("ahu1", "hvac")))
    hp = actuation(
        {
            "site": "s2",
            "asset": "hp1",
            "kind": "heatpump",
            "kw": [-1.0],
            "t_setpoint_c": [20.0],
            "t_setpoint_release_c": 21.0,
        },
        site,
        {},
    )
    fan = actuation(
        {
            "site": "s2",
            "asset": "ahu1",
            "kind": "fan",
            "kw": [-0.5],
            "fan_speed_pct": [30.0],
            "fan_speed_release_pct": 60.0,
        },
        site,
        {},
    )
    assert not isinstance(hp, str) and (hp.kind, hp.values, hp.release) == ("t_setpoint_c", (20.0,), 21.0)
    assert not isinstance(fan, str) and (fan.kind, fan.values, fan.release) == (
        "fan_speed_pct",
        (30.0,),
        60.0,
    )
    cmd = step_commands(T0, "r", 0, (T0, T0 + timedelta(hours=1)), [fan], {})[0]
    assert cmd.kind == "fan_speed_pct" and cmd.value == 30.0
    # a cancel ends a BMS write by a successor valid one second (the agent then relinquishes it)
    rel = release_commands(T0, "r", [hp, fan], {}, step=0)
    assert [(c.kind, c.value) for c in rel] == [("t_setpoint_c", 20.0), ("fan_speed_pct", 30.0)]
    assert {c.valid_until - c.valid_from for c in rel} == {timedelta(seconds=1)}


def test_a_flat_contract_load_is_not_commandable_and_says_why() -> None:
    why = actuation({"site": "s1", "asset": "load", "kind": "load", "kw": [-5.0]}, SITE, {})
    assert isinstance(why, str) and "s1/load" in why and "no registered asset" in why
    assert isinstance(
        actuation({"site": "zz", "asset": "bat1", "kind": "battery", "kw": [1.0]}, None, {}), str
    )


def _plan_cmd(site: str, asset: str, request_id: str | None = None) -> Command:
    return Command(
        site=site,
        ts=T0,
        cmd_id=f"p-{site}-{asset}-{request_id}",
        asset=asset,
        kind="p_setpoint_kw",
        value=1.0,
        valid_from=T0,
        valid_until=T0 + timedelta(minutes=16),
        request_id=request_id,
    )


def test_planner_commands_to_held_assets_are_dropped_and_dr_commands_kept() -> None:
    cmds = [
        _plan_cmd("s1", "bat1"),
        _plan_cmd("s1", "ev1"),
        _plan_cmd("s2", "bat1"),
        _plan_cmd("s1", "bat1", "r"),
    ]
    kept, dropped = filter_planner(cmds, {("s1", "bat1")})
    assert [(c.site, c.asset, c.request_id) for c in kept] == [
        ("s1", "ev1", None),
        ("s2", "bat1", None),
        ("s1", "bat1", "r"),
    ]
    assert [(c.site, c.asset) for c in dropped] == [("s1", "bat1")]


def test_without_a_request_id_the_wire_and_the_signature_are_as_before() -> None:
    cmd = _plan_cmd("s1", "bat1")
    assert b"request_id" not in encode(cmd) and b"request_id" not in canonical_bytes(cmd)
    ack = Ack(site="s1", ts=T0, cmd_id="c", asset="bat1", status="applied")
    assert b"request_id" not in encode(ack)
    echoed = ack.model_copy(update={"request_id": "r"})
    back = decode(site_topic("s1", "ack"), encode(echoed))
    assert isinstance(back, Ack) and back.request_id == "r"
    # a pre-field payload (no key at all) still decodes
    assert decode(site_topic("s1", "cmd"), encode(cmd)) == cmd
    # the published JSON Schema (`gridflex schema`) still lists every field, the new one optional
    for model in (Command, Ack):
        schema = model.model_json_schema(mode="serialization")
        assert "request_id" in schema["properties"] and "request_id" not in schema["required"]
        assert "cmd_id" in schema["required"]


def test_interval_bounds_end_on_the_window() -> None:
    b = interval_bounds(T0, T0 + timedelta(minutes=10), 3)
    assert b[0][0] == T0 and b[-1][1] == T0 + timedelta(minutes=10)
    assert [round((e - s).total_seconds(), 6) for s, e in b] == pytest.approx([200.0] * 3)
