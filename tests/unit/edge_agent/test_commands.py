"""Command decisions (pure) and fuzzing of the command path: nothing refused ever reaches a device."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.commands import CommandExecutor, recover_ids
from edge_agent.config import PointConfig, SiteConfig, load_config
from edge_agent.decision import RampState, decide
from edge_agent.drivers.base import PointRef, Reading
from protocols.codec import decode, encode
from protocols.errors import ContractError
from protocols.messages import Ack, Command
from protocols.signing import ReplayGuard, sign
from protocols.topics import site_topic

EXAMPLE = Path(__file__).parents[3] / "examples" / "site.yaml"
NOW = datetime(2030, 1, 15, 12, tzinfo=UTC)
KEY = b"k" * 32


@pytest.fixture(scope="module")
def cfg() -> SiteConfig:
    return load_config(EXAMPLE)


def _cmd(
    asset: str, kind: str, value: float | str, *, cmd_id: str = "c1", ttl_s: float = 60, start: datetime = NOW
) -> Command:
    return Command.model_validate(
        {
            "site": "b001",
            "ts": start,
            "cmd_id": cmd_id,
            "asset": asset,
            "kind": kind,
            "value": value,
            "valid_from": start,
            "valid_until": start + timedelta(seconds=ttl_s),
        }
    )


CASES = [
    # id, asset, kind, value, ramp, expected status, expected value (command units), expected write
    ("pv_applied", "pv1", "p_limit_kw", 4.0, None, "applied", 4.0, 50.0),
    ("pv_above_limit", "pv1", "p_limit_kw", 9.0, None, "clamped", 8.0, 100.0),
    ("pv_negative_limit", "pv1", "p_limit_kw", -1.0, None, "clamped", 0.0, 0.0),
    ("hp_below_14a", "hp1", "p_limit_kw", 0.0, None, "clamped", 4.2, 4.2),
    ("hp_in_range", "hp1", "p_limit_kw", 6.0, None, "applied", 6.0, 6.0),
    ("hp_above_point_max", "hp1", "p_limit_kw", 12.0, None, "clamped", 9.0, 9.0),
    ("unknown_kind_for_asset", "pv1", "p_setpoint_kw", 1.0, None, "rejected", None, None),
    ("unknown_asset", "zz", "p_limit_kw", 1.0, None, "rejected", None, None),
    ("mode_not_configured", "pv1", "mode", "hold", None, "rejected", None, None),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_decide(cfg: SiteConfig, case: tuple[Any, ...]) -> None:
    _, asset, kind, value, ramp, status, applied, write = case
    d = decide(
        _cmd(asset, kind, value), config=cfg, key=None, guard=ReplayGuard(), now=NOW, ramp=ramp, now_mono=0.0
    )
    assert d.status == status, d.reason
    if applied is not None:
        assert d.value == pytest.approx(applied) and d.write_value == pytest.approx(write)


def test_ramp_limits_the_step_but_never_below_the_floor(cfg: SiteConfig) -> None:
    hp = cfg.asset("hp1")
    ramped = cfg.model_copy(
        update={
            "assets": [
                cfg.assets[0],
                hp.model_copy(update={"limits": hp.limits.model_copy(update={"ramp_kw_per_s": 0.5})}),
            ]
        }
    )
    d = decide(
        _cmd("hp1", "p_limit_kw", 9.0),
        config=ramped,
        key=None,
        guard=ReplayGuard(),
        now=NOW,
        ramp=RampState(5.0, 0.0),
        now_mono=2.0,
    )
    assert (d.status, d.value) == ("clamped", 6.0)
    d = decide(
        _cmd("hp1", "p_limit_kw", 0.0, cmd_id="c2"),
        config=ramped,
        key=None,
        guard=ReplayGuard(),
        now=NOW,
        ramp=RampState(4.5, 0.0),
        now_mono=0.1,
    )
    assert d.value == pytest.approx(4.45)  # 0.5 kW/s for 0.1 s
    d = decide(
        _cmd("hp1", "p_limit_kw", 0.0, cmd_id="c3"),
        config=ramped,
        key=None,
        guard=ReplayGuard(),
        now=NOW,
        ramp=RampState(4.3, 0.0),
        now_mono=10.0,
    )
    assert d.value == pytest.approx(4.2)  # the ramp would allow 0 kW; the floor does not


def test_signature_expiry_replay_and_future(cfg: SiteConfig) -> None:
    guard = ReplayGuard()
    good = sign(_cmd("hp1", "p_limit_kw", 5.0), KEY)
    assert (
        decide(
            good.model_copy(update={"sig": "0" * 64}),
            config=cfg,
            key=KEY,
            guard=guard,
            now=NOW,
            ramp=None,
            now_mono=0,
        ).status
        == "rejected"
    )
    assert decide(good, config=cfg, key=KEY, guard=guard, now=NOW, ramp=None, now_mono=0).status == "applied"
    assert (
        decide(good, config=cfg, key=KEY, guard=guard, now=NOW, ramp=None, now_mono=0).status == "rejected"
    )  # replay
    old = sign(_cmd("hp1", "p_limit_kw", 5.0, cmd_id="c9", start=NOW - timedelta(hours=1)), KEY)
    assert decide(old, config=cfg, key=KEY, guard=guard, now=NOW, ramp=None, now_mono=0).status == "expired"
    future = sign(_cmd("hp1", "p_limit_kw", 5.0, cmd_id="c8", start=NOW + timedelta(hours=1)), KEY)
    assert (
        decide(future, config=cfg, key=KEY, guard=guard, now=NOW, ramp=None, now_mono=0).status == "rejected"
    )


def test_recover_ids() -> None:
    assert recover_ids(b'{"cmd_id": "a1", "asset": "pv1", "value": []}') == ("a1", "pv1")
    assert recover_ids(b'{"cmd_id": "a 1", "asset": "pv1"}') is None
    assert recover_ids(b"[1, 2]") is None
    assert recover_ids(b"\xff") is None


class RecordingDriver:
    """A small fake device: records writes, answers reads with the last written value."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, float]] = []

    async def read(self, points: Sequence[PointRef]) -> dict[str, Reading]:
        value = self.writes[-1][1] if self.writes else 0.0
        return {r.key: Reading(value) for r in points}

    async def write(self, point: PointConfig, value: float, *, priority: int | None = None) -> None:
        self.writes.append((point.name, value))

    async def relinquish(self, point: PointConfig) -> None:
        self.writes.append((point.name, float("nan")))

    async def close(self) -> None:
        return None


class _Clock:
    def now(self) -> datetime:
        return NOW

    def monotonic(self) -> float:
        return 0.0

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


VALID = sign(_cmd("hp1", "p_limit_kw", 5.0), KEY)


def _valid_json() -> dict[str, Any]:
    return json.loads(encode(VALID))  # type: ignore[no-any-return]


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)


@st.composite
def fuzzed_payloads(draw: st.DrawFn) -> bytes:
    choice = draw(st.integers(0, 2))
    if choice == 0:
        return draw(st.binary(max_size=200))
    body = _valid_json()
    if choice == 1:
        key = draw(st.sampled_from(sorted(body)))
        body[key] = draw(json_values)
    else:
        body[draw(st.text(min_size=1, max_size=10))] = draw(json_values)
    return json.dumps(body, allow_nan=True).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=fuzzed_payloads())
def test_fuzzed_commands_never_reach_the_device(cfg: SiteConfig, payload: bytes) -> None:
    signed_cfg = cfg.model_copy(
        update={
            "signing": cfg.signing.model_copy(update={"key": __import__("pydantic").SecretStr(KEY.hex())})
        }
    )
    driver = RecordingDriver()
    acks: list[Ack] = []
    events: list[str] = []

    async def publish(ack: Ack) -> None:
        acks.append(ack)

    executor = CommandExecutor(
        config=signed_cfg,
        clock=_Clock(),
        drivers={"inverter": driver, "bms": driver},
        latest={},
        publish_ack=publish,
        events=lambda kind, *_: events.append(kind),
    )
    ack = asyncio.run(executor.handle(site_topic("b001", "cmd"), payload))
    try:
        same_as_signed = decode(site_topic("b001", "cmd"), payload) == VALID
    except ContractError:
        same_as_signed = False
    if same_as_signed:  # the mutation changed nothing the signature covers: a real command
        assert ack is not None and ack.status == "applied"
        return
    assert driver.writes == [], payload
    if ack is None:
        assert events == ["command_rejected"]
    else:
        assert ack.status in ("rejected", "expired") and acks == [ack]


def test_an_ack_carries_its_commands_dr_request_id(cfg: SiteConfig) -> None:
    """A DR activation's command and its ack link back to the request: applied and rejected alike."""
    signed_cfg = cfg.model_copy(
        update={
            "signing": cfg.signing.model_copy(update={"key": __import__("pydantic").SecretStr(KEY.hex())})
        }
    )
    driver = RecordingDriver()

    async def publish(ack: Ack) -> None:
        return None

    executor = CommandExecutor(
        config=signed_cfg,
        clock=_Clock(),
        drivers={"inverter": driver, "bms": driver},
        latest={},
        publish_ack=publish,
        events=lambda *_: None,
    )
    with_id = sign(_cmd("hp1", "p_limit_kw", 5.0).model_copy(update={"request_id": "dr-42"}), KEY)
    ack = asyncio.run(executor.handle(site_topic("b001", "cmd"), encode(with_id)))
    assert ack is not None and ack.status == "applied" and ack.request_id == "dr-42"
    unknown = sign(
        _cmd("nope", "p_limit_kw", 5.0, cmd_id="c2").model_copy(update={"request_id": "dr-42"}), KEY
    )
    ack = asyncio.run(executor.handle(site_topic("b001", "cmd"), encode(unknown)))
    assert ack is not None and ack.status == "rejected" and ack.request_id == "dr-42"
    plain = asyncio.run(
        executor.handle(
            site_topic("b001", "cmd"), encode(sign(_cmd("hp1", "p_limit_kw", 4.5, cmd_id="c3"), KEY))
        )
    )
    assert plain is not None and plain.request_id is None and b"request_id" not in encode(plain)
