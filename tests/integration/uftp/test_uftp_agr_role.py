"""GridFlex as UFTP AGR against shapeshifter-uftp's own DSO service in another process, over loopback.

The library's ShapeshifterDsoService asks 15 kW of reduction in ISPs 73-74 of 3 Dec
(17:00-17:30 UTC) at its congestion point. GridFlex's DR programme `dso-test` has two
10 kW load contracts; the selection's dry run can deliver the 15 kW, so GridFlex offers
−15,000 W per ISP for 7.5 kWh × 0.4 EUR = 3.0000 EUR, minimum factor 0.5, and records no
DR request. The DSO orders it at factor 0.8 (2.4000 EUR); GridFlex submits a DR request of
12 kW per ISP through DrService.submit and answers Accepted. The DSO then settles it
(price 2.4, penalty 0.2, net 2.2: accepted) and an order GridFlex never took (disputed).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from cloud_controller.dr.requests_store import DrRecord
from cloud_controller.dr.service import DrService
from cloud_controller.market.uftp.agr import UftpAgr
from cloud_controller.market.uftp.config import UftpConfig, UftpPeer
from cloud_controller.market.uftp.envelope import SigningKey
from cloud_controller.market.uftp.node import UftpNode
from cloud_controller.market.uftp.router import uftp_router
from protocols.clock import SimClock
from protocols.messages import DRRequest
from tests.integration.uftp.party import Party, library_dso_config, serving, uftp_python, wait_for

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
CONTRACTS = """
contracts:
  - {site: h1, program: dso-test, directions: [reduce], p_max_kw: 10, events_per_day: 3, max_duration: PT4H}
  - {site: h2, program: dso-test, directions: [reduce], p_max_kw: 10, events_per_day: 3, max_duration: PT4H}
"""
SETTLED_ISPS = [
    {
        "start": 73,
        "baseline_power": 40000,
        "ordered_flex_power": -12000,
        "actual_power": 30000,
        "delivered_flex_power": -10000,
        "power_deficiency": -2000,
    },
    {
        "start": 74,
        "baseline_power": 40000,
        "ordered_flex_power": -12000,
        "actual_power": 28000,
        "delivered_flex_power": -12000,
        "power_deficiency": 0,
    },
]


async def test_library_dso_gets_an_offer_from_dr_its_order_runs_through_dr_and_its_settlement_is_answered(
    tmp_path: Path,
) -> None:
    uftp_python()
    (tmp_path / "contracts.yaml").write_text(CONTRACTS, encoding="utf-8")
    clock = SimClock(NOW)
    dr = DrService(
        tmp_path / "dr.sqlite", clock=clock, contracts_file=tmp_path / "contracts.yaml", step_minutes=15
    )
    previews: list[DRRequest] = []

    async def preview(req: DRRequest) -> dict[str, Any]:
        previews.append(req)
        return await asyncio.to_thread(dr.preview, req, {})

    async def execute(req: DRRequest) -> DrRecord:
        return await asyncio.to_thread(dr.submit, req, {})

    ours, theirs = SigningKey.generate(), SigningKey.generate()
    app = FastAPI()
    async with serving(app) as url:
        party = Party(
            library_dso_config(
                theirs.private_b64,
                ours.public_b64,
                f"{url}/uftp/agr",
                "ea1.2026-12.dso.test:mv-3",
                0.8,
                settlement={
                    "period": "2026-12-03",
                    "congestion_point": "ea1.2026-12.dso.test:mv-3",
                    "orders": [
                        {
                            "order_reference": "dso-order-1",
                            "price": "2.4",
                            "penalty": "0.2",
                            "net": "2.2",
                            "isps": SETTLED_ISPS,
                        },
                        {
                            "order_reference": "dso-order-9",
                            "price": "1",
                            "penalty": "0",
                            "net": "1",
                            "isps": SETTLED_ISPS,
                        },
                    ],
                },
            )
        )
        cfg = UftpConfig(
            enabled=True,
            roles=["AGR"],
            offer_price_eur_per_kwh=0.4,
            offer_min_activation_factor=0.5,
            peers=[
                UftpPeer(
                    domain="dso.test",
                    role="DSO",
                    endpoint=party.endpoint,
                    public_key=theirs.public_b64,
                    program="dso-test",
                )
            ],
        )
        node = UftpNode(cfg, ours, clock=clock)
        agr = UftpAgr(node, preview=preview, execute=execute)
        app.include_router(uftp_router(node))
        try:
            await party.start()  # it sends its FlexRequest as soon as it listens
            await wait_for(lambda: len(agr.log.settlements) == 2, timeout_s=15, what="the settlement")
            await node.idle()
            got = await party.finish()
        finally:
            party.kill()
            await node.aclose()

    try:
        assert got["errors"] == []
        assert agr.log.requests_rejected == [] and agr.log.orders_rejected == []
        by_type = {m["type"]: m for m in got["received"]}
        assert len(got["received"]) == 4  # replies are processed on the library's threads: any order
        assert sorted(by_type) == [
            "FlexOffer",
            "FlexOrderResponse",
            "FlexRequestResponse",
            "FlexSettlementResponse",
        ]
        assert by_type["FlexRequestResponse"]["result"] == "Accepted"
        offer = by_type["FlexOffer"]
        [opt] = offer["offer_options"]
        assert [(i["power"], i["start"]) for i in opt["isps"]] == [(-15000, 73), (-15000, 74)]
        assert (opt["price"], opt["min_activation_factor"]) == ("3.0000", "0.50")
        assert offer["congestion_point"] == "ea1.2026-12.dso.test:mv-3"
        assert by_type["FlexOrderResponse"]["result"] == "Accepted"
        statuses = by_type["FlexSettlementResponse"]["flex_order_settlement_statuses"]
        assert [(s["order_reference"], s["disposition"]) for s in statuses] == [
            ("dso-order-1", "Accepted"),
            ("dso-order-9", "Disputed"),
        ]
        assert "no order of ours" in statuses[1]["dispute_reason"]

        # the dry run recorded nothing; the order is one DR request of 12 kW per ISP, selected
        [dry] = previews
        assert [iv.p_kw for iv in dry.intervals] == [15.0, 15.0]
        assert dr.requests.get(dry.request_id) is None
        [executed] = agr.orders.values()
        record = dr.requests.get(executed.dr_request_id)
        assert record is not None and record.status == "selected"
        assert (record.request.start, record.request.end) == (
            datetime(2026, 12, 3, 17, 0, tzinfo=UTC),
            datetime(2026, 12, 3, 17, 30, tzinfo=UTC),
        )
        assert [iv.p_kw for iv in record.request.intervals] == pytest.approx([12.0, 12.0])
        assert record.selection["delivered_kw"] == pytest.approx([12.0, 12.0])
        assert executed.ordered_w == {73: -12000, 74: -12000}
        assert node.stats.refused == {} and node.stats.handler_errors == 0
    finally:
        dr.close()
