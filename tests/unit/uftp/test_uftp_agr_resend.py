"""Our AGR's D-Prognosis re-sent when plan or orders change it (only then, at most once per interval),
the scheduled Metering across a restart, and the operator's `POST /uftp/metering/{day}`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import Depends, FastAPI, HTTPException, Request

from cloud_controller.market.uftp.agr_prognosis import AgrPrognoses, PrognosisSources
from cloud_controller.market.uftp.agr_resend import PrognosisResender
from cloud_controller.market.uftp.config import UftpConfig, UftpPeer
from cloud_controller.market.uftp.envelope import SigningKey
from cloud_controller.market.uftp.metering_api import metering_router
from cloud_controller.market.uftp.node import UftpNode
from cloud_controller.market.uftp.prognosis_messages import DPrognosis, Metering
from cloud_controller.market.uftp.store import UftpStore
from protocols.clock import SimClock
from tests.unit.uftp.test_uftp_agr_prognosis import CP, EAN, TZ, Dso

T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
DAY = date(2026, 12, 3)
STREAM = ("dso.test", CP, "2026-12-03", TZ)


class World:
    """Our AGR's prognoses over a node whose DSO peer is `dso` (in-memory HTTP), on `clock`."""

    def __init__(self, store: UftpStore | None = None, *, min_interval_s: float = 900.0) -> None:
        self.ours, theirs = SigningKey.generate(), SigningKey.generate()
        self.peer = UftpPeer(
            domain="dso.test",
            role="DSO",
            endpoint="http://127.0.0.1:1/dso",
            public_key=theirs.public_b64,
            program="p",
            congestion_points={CP: ["h1", "h2"]},
            eans={EAN: "h1"},
        )
        bare = UftpPeer(
            domain="bare.test",
            role="DSO",
            endpoint="http://127.0.0.1:1/bare",
            public_key=theirs.public_b64,
            program="p",
        )
        self.dso = Dso(self.ours)
        self.clock = SimClock(T0)
        #: h1's forecast kW (a new plan changes it), h2 2.5 kW
        self.h1_kw = 10.0
        config = UftpConfig(
            enabled=True, roles=["AGR"], peers=[self.peer, bare], prognosis_min_interval_s=min_interval_s
        )
        client = httpx.AsyncClient(transport=httpx.MockTransport(self.dso))
        self.node = UftpNode(config, self.ours, clock=self.clock, client=client)
        self.prognoses = AgrPrognoses(self.node, PrognosisSources(self.forecast, self.means), store=store)
        self.resender = PrognosisResender(self.prognoses, min_interval_s)

    async def forecast(
        self, sites: Sequence[str], bounds: Sequence[tuple[datetime, datetime]]
    ) -> dict[str, list[float]]:
        return {s: [self.h1_kw if s == "h1" else 2.5] * len(bounds) for s in sites}

    async def means(self, sites: Sequence[str], start: datetime, end: datetime, step_s: float) -> Any:
        row = np.full(96, np.nan)
        row[72] = 14.0  # ISP 73
        return np.array([row])

    def sent(self, kind: type[Any]) -> list[Any]:
        return [m for m in self.dso.got if isinstance(m, kind)]

    async def settle(self) -> None:
        for _ in range(200):
            await asyncio.sleep(0)

    async def aclose(self) -> None:
        await self.resender.aclose()
        await self.prognoses.aclose()
        await self.node.aclose()


def _w(msg: DPrognosis) -> dict[int, int]:
    return {n: i.power_w for i in msg.isps for n in range(i.start, i.start + i.duration)}


async def test_a_prognosis_is_re_sent_only_when_it_changed_and_not_within_the_interval() -> None:
    w = World()
    await w.prognoses.send_prognosis(w.peer, CP, DAY, TZ)
    assert await w.resender.resend_changed() == []  # the same plan: nothing sent
    w.h1_kw = 12.0  # a new plan, 60 s later
    w.clock.advance(60.0)
    assert await w.resender.resend_changed() == []
    assert w.resender.waiting() == [STREAM] and len(w.sent(DPrognosis)) == 1
    assert await w.resender.resend_changed() == [] and w.resender.waiting() == [STREAM]  # one waiter
    w.clock.advance(839.0)  # 899 s after Revision 1
    await w.settle()
    assert len(w.sent(DPrognosis)) == 1
    w.clock.advance(1.0)
    await w.settle()
    first, second = w.sent(DPrognosis)
    assert (first.revision, second.revision) == (1, 2)
    assert set(_w(first).values()) == {12500} and set(_w(second).values()) == {14500}
    assert len(_w(second)) == 96 and w.resender.waiting() == []
    w.clock.advance(3600.0)
    assert await w.resender.resend_changed() == []  # unchanged since Revision 2
    await w.aclose()


async def test_an_executed_order_enters_the_prognosis_of_its_isps_and_a_day_that_ended_is_left_alone() -> (
    None
):
    w = World(min_interval_s=0.0)
    await w.prognoses.send_prognosis(w.peer, CP, DAY, TZ)
    await w.prognoses.send_prognosis(w.peer, CP, date(2026, 12, 2), TZ)  # yesterday's: over
    w.prognoses.record_order(w.peer, CP, DAY, "o-1", {73: -12000, 74: -12000})
    [again] = await w.resender.resend_changed()
    assert (again.period, again.revision) == ("2026-12-03", 2)
    power = _w(again)
    assert (power[72], power[73], power[74], power[75]) == (12500, 500, 500, 12500)
    w.h1_kw = 20.0  # the ended day would differ too: still not re-sent
    [third] = await w.resender.resend_changed()
    assert third.period == "2026-12-03" and third.revision == 3
    assert [m.period for m in w.sent(DPrognosis)].count("2026-12-02") == 1
    await w.aclose()


async def test_a_scheduled_metering_survives_a_restart_and_goes_out_at_once_when_past_due(
    tmp_path: Path,
) -> None:
    store = UftpStore(tmp_path / "uftp.sqlite")
    w = World(store)
    w.prognoses.schedule_metering(w.peer, DAY, datetime(2026, 12, 3, 17, 30, tzinfo=UTC), TZ)
    await w.aclose()  # the restart: nothing sent
    store.close()
    assert w.sent(Metering) == []

    store = UftpStore(tmp_path / "uftp.sqlite")
    w2 = World(store)
    w2.clock.advance((datetime(2026, 12, 3, 18, 0, tzinfo=UTC) - T0).total_seconds())  # down past 17:30
    assert w2.prognoses.start() == 1
    await w2.settle()
    [got] = w2.sent(Metering)
    assert (got.ean, got.period, got.power_kw()) == (EAN, "2026-12-03", {73: 14.0})
    await w2.aclose()
    store.close()

    store = UftpStore(tmp_path / "uftp.sqlite")
    w3 = World(store)
    assert w3.prognoses.start() == 0  # sent: done
    await w3.aclose()
    store.close()


def _operator(request: Request) -> None:
    if request.headers.get("authorization") != "Bearer op":
        raise HTTPException(403, "operator only")


async def test_the_metering_route_sends_a_day_now_and_refuses_a_bad_day_peer_or_token() -> None:
    w = World()
    w.clock.advance((datetime(2026, 12, 3, 18, 0, tzinfo=UTC) - T0).total_seconds())
    app = FastAPI()
    app.include_router(metering_router(w.prognoses, write=[Depends(_operator)]))
    op = {"authorization": "Bearer op"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        assert (await http.post("/uftp/metering/2026-12-03")).status_code == 403
        bad = await http.post("/uftp/metering/2026-13-03", headers=op)
        assert (bad.status_code, bad.json()["kind"]) == (400, "day")
        assert "'2026-13-03' is not a date" in bad.json()["reason"]
        future = await http.post("/uftp/metering/2026-12-04", headers=op)
        assert future.status_code == 400 and "has not begun" in future.json()["reason"]
        unknown = await http.post("/uftp/metering/2026-12-03", params={"peer": "nobody.test"}, headers=op)
        assert (unknown.status_code, unknown.json()["kind"]) == (404, "peer")
        bare = await http.post("/uftp/metering/2026-12-03", params={"peer": "bare.test"}, headers=op)
        assert bare.status_code == 409 and "no `eans`" in bare.json()["reason"]
        assert w.sent(Metering) == []
        ok = await http.post("/uftp/metering/2026-12-03", params={"peer": "dso.test"}, headers=op)
        again = await http.post("/uftp/metering/2026-12-03", headers=op)  # every DSO peer
    assert ok.status_code == 200
    [sent] = ok.json()["sent"]
    assert (sent["peer"], sent["ean"], sent["revision"], sent["isps"]) == ("dso.test", EAN, 1, 1)
    assert [s["revision"] for s in again.json()["sent"]] == [2]
    assert [m.revision for m in w.sent(Metering)] == [1, 2]
    await w.aclose()


async def test_the_metering_route_is_never_open() -> None:
    w = World()
    with pytest.raises(ValueError, match="operator"):
        metering_router(w.prognoses, write=[])
    await w.aclose()
