# mypy: disable-error-code="no-untyped-call"
"""SimClock stepping, backoff bounds and the sign convention."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import pytest

from protocols.backoff import Backoff
from protocols.clock import RealClock, SimClock
from protocols.units import energy_kwh, to_grid_sign


async def test_manual_clock_wakes_sleepers_in_deadline_order(sim_clock: SimClock) -> None:
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await sim_clock.sleep(seconds)
        woke.append((name, sim_clock.monotonic()))

    tasks = [asyncio.create_task(sleeper("b", 20)), asyncio.create_task(sleeper("a", 10))]
    await sim_clock.step(5)
    assert woke == []
    await sim_clock.step(30)
    await asyncio.gather(*tasks)
    assert woke == [("a", 10), ("b", 20)]
    assert sim_clock.now() == datetime(2030, 1, 15, tzinfo=UTC) + timedelta(seconds=35)


async def test_step_runs_a_periodic_loop_the_right_number_of_times(sim_clock: SimClock) -> None:
    ticks: list[float] = []

    async def poller() -> None:
        while True:
            ticks.append(sim_clock.monotonic())
            await sim_clock.sleep(1.0)

    task = asyncio.create_task(poller())
    await sim_clock.step(10)
    task.cancel()
    assert ticks == [float(i) for i in range(11)]


async def test_accelerated_clock_runs_faster_than_wall_time() -> None:
    clock = SimClock(datetime(2030, 1, 1, tzinfo=UTC), speed=1000)
    t0 = clock.monotonic()
    await clock.sleep(50)  # 50 ms of host time
    assert 45 <= clock.monotonic() - t0 < 1000


def test_clock_rejects_naive_start_and_bad_speed() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SimClock(datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="speed"):
        SimClock(speed=0)


def test_real_clock_is_utc() -> None:
    assert RealClock().now().utcoffset() == timedelta(0)


def test_backoff_grows_to_cap_with_jitter() -> None:
    backoff = Backoff(min_s=0.1, max_s=2.0, rng=random.Random(1))
    delays = [backoff.next_delay_s() for _ in range(20)]
    assert all(0.05 <= d <= 2.0 for d in delays)
    assert backoff.ceiling_s() == 2.0
    assert len(set(delays)) > 10  # jittered, not lock-step
    backoff.reset()
    assert backoff.ceiling_s() == pytest.approx(0.1)


def test_sign_convention() -> None:
    assert to_grid_sign(4.0, is_generation=True) == -4.0
    assert to_grid_sign(-4.0, is_generation=False) == 4.0
    assert energy_kwh(4.0, 900) == pytest.approx(1.0)


def test_fast_paho_properties_decode_like_paho() -> None:
    """The receive-path speed-up must decode MQTT 5 properties exactly as paho does."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from protocols._paho_speedup import FastProperties

    sent = Properties(PacketTypes.PUBLISH)
    sent.MessageExpiryInterval = 30
    sent.ContentType = "application/json"
    sent.UserProperty = ("k", "v")
    raw = sent.pack()
    theirs, ours = Properties(PacketTypes.PUBLISH), FastProperties(PacketTypes.PUBLISH)
    assert theirs.unpack(raw)[1] == ours.unpack(raw)[1]
    assert (
        ours.json()
        == theirs.json()
        == {
            "MessageExpiryInterval": 30,
            "ContentType": "application/json",
            "UserProperty": [("k", "v")],
        }
    )
    ours.clear()
    assert ours.isEmpty()
