"""Our AGR's D-Prognosis and Metering: every ISP of the day across DST, runs compressed, revisions, ended ISPs only."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import httpx
import numpy as np
import pytest
from pydantic import ValidationError

from cloud_controller.market.uftp.agr_prognosis import (
    AgrPrognoses,
    PrognosisSources,
    day_bounds,
    metering_isps,
    plan_portfolio_kw,
    prognosis_isps,
)
from cloud_controller.market.uftp.codec import decode
from cloud_controller.market.uftp.config import UftpConfig, UftpPeer
from cloud_controller.market.uftp.envelope import SigningKey, open_envelope, parse_envelope, verify_key
from cloud_controller.market.uftp.node import UftpNode
from cloud_controller.market.uftp.prognosis_messages import DPrognosis, Metering
from protocols.clock import SimClock

TZ = "Europe/Amsterdam"
CP = "ea1.2026-12.dso.test:mv-3"
EAN = "E871690900000000001"


def _peer(dso_key: SigningKey) -> UftpPeer:
    return UftpPeer(
        domain="dso.test",
        role="DSO",
        endpoint="http://127.0.0.1:1/dso",
        public_key=dso_key.public_b64,
        program="p",
        congestion_points={CP: ["h1", "h2"]},
        eans={EAN: "h1"},
    )


class Dso:
    """The DSO's endpoint: what we POSTed, opened with our key."""

    def __init__(self, ours: SigningKey) -> None:
        self.public = verify_key(ours.public_b64)
        self.got: list[Any] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.got.append(decode(open_envelope(parse_envelope(request.content), self.public)))
        return httpx.Response(200)


async def _flat(sites: Sequence[str], bounds: Sequence[tuple[datetime, datetime]]) -> dict[str, list[float]]:
    return {s: [10.0 if s == "h1" else 2.5] * len(bounds) for s in sites}


def _node(dso: Dso, ours: SigningKey, peer: UftpPeer, now: datetime) -> UftpNode:
    client = httpx.AsyncClient(transport=httpx.MockTransport(dso))
    return UftpNode(
        UftpConfig(enabled=True, roles=["AGR"], peers=[peer]), ours, clock=SimClock(now), client=client
    )


@pytest.mark.parametrize(
    ("day", "n"), [(date(2026, 3, 29), 92), (date(2026, 12, 3), 96), (date(2026, 10, 25), 100)]
)
async def test_a_d_prognosis_gives_every_isp_of_its_day_across_dst_and_each_resend_a_higher_revision(
    day: date, n: int
) -> None:
    ours, theirs = SigningKey.generate(), SigningKey.generate()
    peer = _peer(theirs)
    dso = Dso(ours)
    node = _node(dso, ours, peer, datetime(2026, 12, 3, 8, tzinfo=UTC))
    prognoses = AgrPrognoses(node, PrognosisSources(_flat))
    first = await prognoses.send_prognosis(peer, CP, day, TZ)
    second = await prognoses.send_prognosis(peer, CP, day, TZ)
    await node.aclose()
    assert first is not None and second is not None
    assert [(i.power_w, i.start, i.duration) for i in first.isps] == [(12500, 1, n)]
    assert (first.revision, second.revision) == (1, 2)
    assert [type(m) for m in dso.got] == [DPrognosis, DPrognosis]
    assert dso.got[1].revision == 2 and dso.got[0].period == day.isoformat()
    assert len(day_bounds(day, TZ)) == n


async def test_no_d_prognosis_for_a_congestion_point_without_our_sites() -> None:
    ours, theirs = SigningKey.generate(), SigningKey.generate()
    dso = Dso(ours)
    peer = _peer(theirs)
    node = _node(dso, ours, peer, datetime(2026, 12, 3, 8, tzinfo=UTC))
    got = await AgrPrognoses(node, PrognosisSources(_flat)).send_prognosis(
        peer, "ea1.2026-12.dso.test:other", date(2026, 12, 3), TZ
    )
    await node.aclose()
    assert (got, dso.got) == (None, [])


def test_runs_of_one_power_are_one_isp_element_and_gaps_start_a_new_one() -> None:
    got = prognosis_isps({1: 5, 2: 5, 3: 7, 4: 5, 6: 5})
    assert [(i.power_w, i.start, i.duration) for i in got] == [(5, 1, 2), (7, 3, 1), (5, 4, 1), (5, 6, 1)]


def test_metering_values_have_three_decimals_never_an_exponent_or_minus_zero() -> None:
    got = metering_isps({2: 1e-7, 1: 12345678.9, 3: -0.0001, 4: -7.1256})
    assert [(i.start, str(i.value)) for i in got] == [
        (1, "12345678.900"),
        (2, "0.000"),
        (3, "0.000"),
        (4, "-7.126"),
    ]


def test_the_portfolio_forecast_is_the_plans_where_it_covers_the_isp_else_the_measured_power() -> None:
    plan_at = datetime(2026, 12, 3, 8, tzinfo=UTC)
    bounds = day_bounds(date(2026, 12, 3), TZ)  # ISP 1 = 23:00 UTC on 2 Dec
    kw = plan_portfolio_kw(
        ["h1", "h2"],
        bounds,
        plan_at=plan_at,
        period_s=900.0,
        site_forecast_kw=np.array([[20.0, 4.0]] * 8),  # 08:00-10:00 UTC: ISPs 37-44
        site_order=["h2", "h1"],  # columns in the registry's order
        p_now_kw={"h1": 3.0},
    )
    assert kw["h1"][35:45] == [3.0] + [4.0] * 8 + [3.0]
    assert kw["h2"][35:45] == [0.0] + [20.0] * 8 + [0.0]  # h2 never reported: 0 beyond the plan


async def test_metering_sends_only_the_isps_that_ended_with_samples_and_skips_a_day_without() -> None:
    ours, theirs = SigningKey.generate(), SigningKey.generate()
    peer = _peer(theirs)
    dso = Dso(ours)
    means_row = np.full(96, np.nan)
    means_row[72:76] = [14.0, 10.5, 9.0, 8.0]  # ISPs 73-76; 17:00-18:00 UTC

    async def means(sites: Sequence[str], start: datetime, end: datetime, step_s: float) -> Any:
        assert (start, end, step_s) == (
            datetime(2026, 12, 2, 23, tzinfo=UTC),
            datetime(2026, 12, 3, 23, tzinfo=UTC),
            900.0,
        )
        return np.array([means_row])

    node = _node(dso, ours, peer, datetime(2026, 12, 3, 17, 30, tzinfo=UTC))  # ISPs 75, 76 not ended
    prognoses = AgrPrognoses(node, PrognosisSources(_flat, means))
    [sent] = await prognoses.send_metering(peer, date(2026, 12, 3))
    means_row[:] = np.nan
    none = await prognoses.send_metering(peer, date(2026, 12, 3))
    await node.aclose()
    [got] = dso.got
    assert isinstance(got, Metering) and got.ean == EAN and got.revision == 1
    assert got.power_kw() == {73: 14.0, 74: 10.5}
    assert sent.message_id == got.message_id and none == []


def test_congestion_points_are_for_dso_peers_and_a_dso_peers_ean_must_sit_behind_one() -> None:
    key = SigningKey.generate().public_b64
    with pytest.raises(ValidationError, match="not behind one of its `congestion_points`"):
        UftpPeer(
            domain="dso.test",
            role="DSO",
            endpoint="http://x/y",
            public_key=key,
            program="p",
            eans={EAN: "h9"},
        )
    with pytest.raises(ValidationError, match="`congestion_points` is for DSO peers"):
        UftpPeer(
            domain="agr.test",
            role="AGR",
            endpoint="http://x/y",
            public_key=key,
            fsp="f",
            congestion_points={CP: ["a"]},
        )


async def test_scheduled_metering_goes_out_at_its_time_not_before_and_aclose_cancels_the_rest() -> None:
    ours, theirs = SigningKey.generate(), SigningKey.generate()
    peer = _peer(theirs)
    dso = Dso(ours)
    row = np.full(96, np.nan)
    row[72] = 14.0

    async def means(sites: Sequence[str], start: datetime, end: datetime, step_s: float) -> Any:
        return np.array([row])

    clock = SimClock(datetime(2026, 12, 3, 17, 0, tzinfo=UTC))
    node = _node(dso, ours, peer, clock.now())
    node.clock = clock
    prognoses = AgrPrognoses(node, PrognosisSources(_flat, means))
    prognoses.schedule_metering(peer, date(2026, 12, 3), datetime(2026, 12, 3, 17, 30, tzinfo=UTC))
    prognoses.schedule_metering(peer, date(2026, 12, 4), datetime(2026, 12, 4, 17, 30, tzinfo=UTC))
    await asyncio.sleep(0.01)
    clock.advance(29 * 60.0)
    await asyncio.sleep(0.01)
    assert dso.got == []  # 17:29
    clock.advance(60.0)
    for _ in range(100):
        if dso.got:
            break
        await asyncio.sleep(0.01)
    [got] = dso.got
    assert isinstance(got, Metering) and got.period == "2026-12-03" and got.power_kw() == {73: 14.0}
    await prognoses.aclose()
    await node.aclose()
    assert dso.got == [got]  # the 4 Dec one was cancelled
