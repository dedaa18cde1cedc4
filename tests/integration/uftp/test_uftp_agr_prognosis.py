"""GridFlex as UFTP AGR sends shapeshifter-uftp's DSO its D-Prognosis and, after delivery, its Metering.

The library's ShapeshifterDsoService (another process, loopback) asks 15 kW in ISPs 73-74
of 3 Dec at `mv-3`, where our sites h1 and h2 sit (`congestion_points`). The portfolio's
prognosis is the plan's (made 08:00 UTC, 48 periods of 15 min: h1 20 kW but 25 kW at
17:00-17:30, h2 15 kW) where it covers the ISP, the measured power beyond (h1 18, h2 12
kW): ISPs 1-36 (before the plan) 30,000 W, 37-72 35,000 W, 73-74 40,000 W, 75-84 35,000 W,
85-96 (after the horizon) 30,000 W — 96 ISPs. It goes out before the FlexOffer, which
names it; the library's DSO counts the day's ISPs itself and answers Accepted. After the
order and the delivery (scheduled by the order for 17:45 UTC, one ISP after its last; the
clock moved to 18:00 UTC) the Metering of h1 and h2 comes from the
store's ISP means (h1 14 kW, then 10.533 kW — 15 samples alternating 11 and 10: 158 / 15 —
h2 8 kW),
Accepted; a re-sent D-Prognosis has Revision 2, Accepted. Pure rules: DST days (92/100
ISPs) and runs compressed to (Start, Duration) in `tests/unit/uftp/test_uftp_agr_prognosis.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI

from cloud_controller.dr.requests_store import DrRecord
from cloud_controller.dr.service import DrService
from cloud_controller.market.book import Book
from cloud_controller.market.config import MarketConfig
from cloud_controller.market.store import MarketStore
from cloud_controller.market.uftp.agr import Execute, Preview, UftpAgr
from cloud_controller.market.uftp.agr_prognosis import (
    AgrPrognoses,
    BucketMeans,
    PrognosisSources,
    plan_portfolio_kw,
)
from cloud_controller.market.uftp.config import UftpConfig, UftpPeer
from cloud_controller.market.uftp.envelope import SigningKey
from cloud_controller.market.uftp.node import UftpNode
from cloud_controller.market.uftp.router import uftp_router
from cloud_controller.market.uftp.side import UftpSide
from cloud_controller.store.sqlite import SqliteStore
from protocols.assets import Points
from protocols.clock import SimClock
from protocols.messages import DRRequest, Sample
from tests.integration.uftp.party import Party, library_dso_config, serving, uftp_python, wait_for

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
T73 = datetime(2026, 12, 3, 17, 0, tzinfo=UTC)
CP = "ea1.2026-12.dso.test:mv-3"
EANS = {"E871690900000000001": "h1", "E871690900000000002": "h2"}
CONTRACTS = """
contracts:
  - {site: h1, program: dso-test, directions: [reduce], p_max_kw: 10, events_per_day: 3, max_duration: PT4H}
  - {site: h2, program: dso-test, directions: [reduce], p_max_kw: 10, events_per_day: 3, max_duration: PT4H}
"""


def _plan_forecast() -> np.ndarray:
    kw = np.array([[20.0, 15.0]] * 48)
    kw[36:38, 0] = 25.0  # periods 36, 37 of the plan: 17:00-17:30 UTC
    return kw


async def _forecast(
    sites: Sequence[str], bounds: Sequence[tuple[datetime, datetime]]
) -> dict[str, list[float]]:
    return plan_portfolio_kw(
        sites,
        bounds,
        plan_at=NOW,
        period_s=900.0,
        site_forecast_kw=_plan_forecast(),
        site_order=["h1", "h2"],
        p_now_kw={"h1": 18.0, "h2": 12.0},
    )


def _write_meters(store: SqliteStore) -> None:
    """One sample a minute in ISPs 73-74: h1 14 kW, then 11/10 alternating (8 x 11 + 7 x 10); h2 8 kW."""

    def h1(k: int) -> float:
        return 14.0 if k < 15 else 10.0 + k % 2

    def h2(k: int) -> float:
        return 8.0

    for site, value in (("h1", h1), ("h2", h2)):
        samples = [
            Sample(
                seq=k,
                asset=Points.METER_P_KW.asset,
                point=Points.METER_P_KW.point,
                value=value(k),
                unit="kW",
                ts=T73 + timedelta(minutes=k),
            )
            for k in range(30)
        ]
        store.write_samples(site, samples)


@dataclass
class AgrParts:
    """What our AGR runs on in these tests: DR on two 10 kW contracts, the store with the meters."""

    clock: SimClock
    dr: DrService
    ts: SqliteStore
    preview: Preview
    execute: Execute
    means: BucketMeans

    def close(self) -> None:
        self.ts.close()
        self.dr.close()


def agr_parts(tmp_path: Path) -> AgrParts:
    uftp_python()
    (tmp_path / "contracts.yaml").write_text(CONTRACTS, encoding="utf-8")
    clock = SimClock(NOW)
    dr = DrService(
        tmp_path / "dr.sqlite", clock=clock, contracts_file=tmp_path / "contracts.yaml", step_minutes=15
    )
    ts = SqliteStore(tmp_path / "ts.sqlite")
    _write_meters(ts)

    async def preview(req: DRRequest) -> dict[str, Any]:
        return await asyncio.to_thread(dr.preview, req, {})

    async def execute(req: DRRequest) -> DrRecord:
        return await asyncio.to_thread(dr.submit, req, {})

    async def means(sites: Sequence[str], start: datetime, end: datetime, step_s: float) -> Any:
        return await asyncio.to_thread(ts.read_bucket_means, sites, Points.METER_P_KW, start, end, step_s)

    return AgrParts(clock, dr, ts, preview, execute, means)


def _library_dso_peer(party: Party, theirs: SigningKey) -> UftpPeer:
    """The library's DSO as our peer: its endpoint and key, h1 and h2 at `CP`, both EANs."""
    return UftpPeer(
        domain="dso.test",
        role="DSO",
        endpoint=party.endpoint,
        public_key=theirs.public_b64,
        program="dso-test",
        congestion_points={CP: ["h1", "h2"]},
        eans=EANS,
    )


async def test_library_dso_takes_our_d_prognosis_of_96_isps_and_our_metering_after_delivery(
    tmp_path: Path,
) -> None:
    parts = agr_parts(tmp_path)
    clock, preview, execute, means = parts.clock, parts.preview, parts.execute, parts.means
    ours, theirs = SigningKey.generate(), SigningKey.generate()
    app = FastAPI()
    async with serving(app) as url:
        party = Party(library_dso_config(theirs.private_b64, ours.public_b64, f"{url}/uftp/agr", CP, 1.0))
        peer = _library_dso_peer(party, theirs)
        node = UftpNode(UftpConfig(enabled=True, roles=["AGR"], peers=[peer]), ours, clock=clock)
        prognoses = AgrPrognoses(node, PrognosisSources(_forecast, means))
        agr = UftpAgr(node, preview=preview, execute=execute, prognoses=prognoses)
        app.include_router(uftp_router(node))
        try:
            await party.start()  # it sends its FlexRequest as soon as it listens
            await wait_for(lambda: len(agr.orders) == 1, timeout_s=15, what="the order")
            [first] = prognoses.prognoses.values()
            await wait_for(lambda: first.result is not None, what="the D-PrognosisResponse")

            assert len(prognoses.metering) == 0  # scheduled for 17:45 UTC: one ISP after ISP 74 ends
            clock.advance((datetime(2026, 12, 3, 18, 0, tzinfo=UTC) - NOW).total_seconds())  # delivered
            await wait_for(lambda: len(prognoses.metering) == 2, what="the scheduled Metering")
            again = await prognoses.send_prognosis(peer, CP, date(2026, 12, 3), "Europe/Amsterdam")
            await wait_for(
                lambda: (
                    all(r.result is not None for r in prognoses.prognoses.values())
                    and all(r.result is not None for r in prognoses.metering.values())
                ),
                what="the responses",
            )
            await node.idle()
            got = await party.finish()
        finally:
            party.kill()
            await prognoses.aclose()
            await node.aclose()
            parts.close()

    assert got["errors"] == [], (got["library_log"], list(node.failures))
    assert node.stats.handler_errors == 0 and node.stats.send_failed == 0, list(node.failures)
    received = got["received"]
    dprog = [m for m in received if m["type"] == "DPrognosis"]
    assert [p["revision"] for p in dprog] == [1, 2]
    isps = [(i["power"], i["start"], i["duration"]) for i in dprog[0]["isps"]]
    assert isps == [(30000, 1, 36), (35000, 37, 36), (40000, 73, 2), (35000, 75, 10), (30000, 85, 12)]
    assert sum(d for _, _, d in isps) == 96
    assert (dprog[0]["congestion_point"], dprog[0]["period"]) == (CP, "2026-12-03")
    [offer] = [m for m in received if m["type"] == "FlexOffer"]
    assert offer["d_prognosis_message_id"] == dprog[0]["message_id"]
    assert [(p.revision, p.result, p.reason) for p in prognoses.prognoses.values()] == [
        (1, "Accepted", None),
        (2, "Accepted", None),
    ]
    assert again is not None and again.revision == 2

    metering = {m["ean"]: m for m in received if m["type"] == "Metering"}
    assert sorted(metering) == sorted(EANS)
    values = {
        ean: [(i["start"], i["value"]) for i in m["profiles"][0]["isps"]] for ean, m in metering.items()
    }
    assert values == {
        "E871690900000000001": [(73, "14.000"), (74, "10.533")],
        "E871690900000000002": [(73, "8.000"), (74, "8.000")],
    }
    profiles = [
        (m["profiles"][0]["profile_type"], m["profiles"][0]["unit"], m["revision"]) for m in metering.values()
    ]
    assert profiles == [("MeteringProfileEnum.POWER", "MeteringUnit.K_W", 1)] * 2  # the library's enums
    assert [m.result for m in prognoses.metering.values()] == ["Accepted", "Accepted"]


def _side(parts: AgrParts, ours: SigningKey, peer: UftpPeer, tmp_path: Path) -> UftpSide:
    """Our AGR as the controller builds it (`UftpSide`), on `uftp.sqlite` in `tmp_path`."""
    config = UftpConfig(enabled=True, roles=["AGR"], peers=[peer], prognosis_min_interval_s=900.0)
    book = Book(
        MarketConfig(fsps={}, congestion_points={}, auto_clear=False), MarketStore(tmp_path / "m.sqlite")
    )
    return UftpSide(
        config,
        clock=parts.clock,
        book=book,
        preview=parts.preview,
        execute=parts.execute,
        key=ours,
        store_path=tmp_path / "uftp.sqlite",
        sources=PrognosisSources(_forecast, parts.means),
    )


async def test_an_executed_order_resends_our_d_prognosis_and_after_a_restart_the_scheduled_metering_arrives(
    tmp_path: Path,
) -> None:
    """The order (15 kW down in ISPs 73-74) makes our prognosis there 40 - 15 = 25 kW: Revision 2 goes
    out once the 900 s interval since Revision 1 has passed; then the side closes before the Metering
    it scheduled for 17:45 UTC, a new side on the same `uftp.sqlite` arms it at start, and at 18:00
    the library's DSO gets both EANs' Metering and answers them."""
    parts = agr_parts(tmp_path)
    ours, theirs = SigningKey.generate(), SigningKey.generate()
    app = FastAPI()
    async with serving(app) as url:
        party = Party(library_dso_config(theirs.private_b64, ours.public_b64, f"{url}/uftp/agr", CP, 1.0))
        peer = _library_dso_peer(party, theirs)
        side = _side(parts, ours, peer, tmp_path)
        app.include_router(side.router())
        sides = [side]
        try:
            await party.start()
            assert side.agr is not None and side.agr.prognoses is not None and side.resender is not None
            first, resender = side.agr.prognoses, side.resender
            await wait_for(lambda: len(resender.waiting()) == 1, timeout_s=15, what="the order's re-send")
            assert resender.waiting() == [("dso.test", CP, "2026-12-03", "Europe/Amsterdam")]
            assert [p.revision for p in first.prognoses.values()] == [1]  # within 900 s of Revision 1
            parts.clock.advance(900.0)
            await wait_for(lambda: len(first.prognoses) == 2, what="Revision 2")
            await wait_for(lambda: all(p.result for p in first.prognoses.values()), what="its response")
            await side.node.idle()
            await side.aclose()  # the Metering scheduled for 17:45 UTC not sent yet

            side = _side(parts, ours, peer, tmp_path)  # the restart: same store, same key
            sides.append(side)
            app.router.routes.clear()  # the old side's routes
            app.include_router(side.router())
            assert side.start() == 1
            task = side.notify_plan()  # as the controller after a plan: the order is in the store
            assert task is not None and side.notify_plan() is None  # one at a time
            assert await task == []  # nothing changed
            assert side.agr is not None and side.agr.prognoses is not None
            again = side.agr.prognoses
            parts.clock.advance(
                (datetime(2026, 12, 3, 18, 0, tzinfo=UTC) - parts.clock.now()).total_seconds()
            )
            await wait_for(lambda: len(again.metering) == 2, what="the Metering after the restart")
            await wait_for(
                lambda: all(m.result for m in again.metering.values()), what="the MeteringResponses"
            )
            await side.node.idle()
            got = await party.finish()
        finally:
            party.kill()
            for s in sides:
                await s.aclose()
    third = _side(parts, ours, peer, tmp_path)
    assert third.start() == 0  # sent: done in the store
    await third.aclose()
    parts.close()

    assert got["errors"] == [], (got["library_log"], list(side.node.failures))
    assert side.node.stats.handler_errors == 0 and side.node.stats.send_failed == 0, list(side.node.failures)
    dprog = [m for m in got["received"] if m["type"] == "DPrognosis"]
    assert [p["revision"] for p in dprog] == [1, 2]
    isps = [(i["power"], i["start"], i["duration"]) for i in dprog[1]["isps"]]
    assert isps == [(30000, 1, 36), (35000, 37, 36), (25000, 73, 2), (35000, 75, 10), (30000, 85, 12)]
    assert [(p.revision, p.result) for p in again.prognoses.values()] == [(1, "Accepted"), (2, "Accepted")]
    metering = {m["ean"]: m for m in got["received"] if m["type"] == "Metering"}
    assert {e: [(i["start"], i["value"]) for i in m["profiles"][0]["isps"]] for e, m in metering.items()} == {
        "E871690900000000001": [(73, "14.000"), (74, "10.533")],
        "E871690900000000002": [(73, "8.000"), (74, "8.000")],
    }
    assert [m.result for m in again.metering.values()] == ["Accepted", "Accepted"]
