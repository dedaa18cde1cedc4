"""The controller with `market.uftp` on, as DSO and as AGR, against the library's services, over loopback.

`POST /market/requests` (the DSO's 15 kW at 17:00-18:00 UTC, 4 ISPs) goes out as a
FlexRequest to the library's AGR (the shell's outlet); its FlexOffer of the same 15 kW for
6 EUR total (0.4 EUR/kWh over 15 kWh) is booked as fsp-a's offer; `POST /market/clear`
orders it whole (6 EUR) and the FlexOrder is Accepted. `GET /uftp/status` counts it all.

As AGR, the library's DSO asks 8 kW in ISPs 73-74 of 15 Jan 2030; the controller's DR
programme (one 10 kW load contract at a1) offers 8 kW per ISP for 4 kWh x 0.3 = 1.2 EUR,
and the order (factor 1) runs through the controller's own DR path: the DR request is
stored `selected` and listed by `GET /dr/requests`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from cloud_controller.api import create_app
from cloud_controller.config import CloudConfig
from cloud_controller.live.types import AssetRef, SiteRef
from cloud_controller.market.uftp.envelope import SigningKey
from cloud_controller.registry import Registry
from cloud_controller.service import CloudController
from protocols.assets import METER
from protocols.clock import SimClock
from protocols.messages import Sample
from tests.integration.uftp.party import Party, serving, uftp_python, wait_for

pytestmark = pytest.mark.integration

NOW = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)
T73_UTC = datetime(2030, 1, 15, 17, 0, tzinfo=UTC)  # ISP 73 of the Amsterdam day: 18:00 local
AGR_EAN = "E871690900000000003"
DELIVERY = datetime(2030, 1, 15, 17, 0, tzinfo=UTC)
REGISTRY = Registry(
    sites=tuple(SiteRef(s, i, (AssetRef(METER, "meter"),)) for i, s in enumerate(("a1", "a2")))
)
DSO_TOKEN = "dso-token-0123456789abcdef"
OPERATOR = "operator-0123456789abcdef"


def _config(tmp: Path, party: Party, theirs: SigningKey) -> CloudConfig:
    (tmp / "dso").write_text(DSO_TOKEN, encoding="utf-8")
    (tmp / "operator").write_text(OPERATOR, encoding="utf-8")
    (tmp / "viewer").write_text("viewer-0123456789abcdef", encoding="utf-8")
    return CloudConfig.model_validate(
        {
            "store": {"path": str(tmp / "s.sqlite")},
            "api": {"operator_token_file": str(tmp / "operator"), "viewer_token_file": str(tmp / "viewer")},
            "market": {
                "dso_token_file": str(tmp / "dso"),
                "fsps": {"fsp-a": {}},
                "congestion_points": {"feeder-1": ["a1", "a2"]},
                "auto_clear": False,
                "uftp": {
                    "enabled": True,
                    "roles": ["DSO"],
                    "domain": "gridflex.test",
                    "peers": [
                        {
                            "domain": "agr.test",
                            "role": "AGR",
                            "endpoint": party.endpoint,
                            "public_key": theirs.public_b64,
                            "fsp": "fsp-a",
                            "sites": ["a1"],
                        }
                    ],
                },
            },
        }
    )


async def test_controller_as_dso_trades_with_the_library_agr_through_the_market_api(tmp_path: Path) -> None:
    uftp_python()
    theirs = SigningKey.generate()
    party = Party({"mode": "agr", "domain": "agr.test", "private_key": theirs.private_b64, "price_eur": 6.0})
    ctl = CloudController(_config(tmp_path, party, theirs), REGISTRY, clock=SimClock(NOW))
    assert ctl.uftp is not None and ctl.uftp.dso is not None and ctl.uftp.agr is None
    try:
        async with serving(create_app(ctl)) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
            party.job["peer"] = {
                "domain": "gridflex.test",
                "public_key": (await http.get("/uftp/key")).json()["public_key"],
                "endpoint": f"{url}/uftp/dso",
            }
            await party.start()
            try:
                body = {
                    "request_id": "r1",
                    "congestion_point": "feeder-1",
                    "ts": NOW.isoformat(),
                    "isps": [
                        {"start": (DELIVERY + timedelta(minutes=15 * k)).isoformat(), "kw": 15.0}
                        for k in range(4)
                    ],
                    "value_eur_per_kwh": 1.0,
                }
                posted = await http.post(
                    "/market/requests", json=body, headers={"Authorization": f"Bearer {DSO_TOKEN}"}
                )
                assert posted.status_code == 201, posted.text
                await wait_for(
                    lambda: (
                        ctl.uftp is not None
                        and ctl.uftp.dso is not None
                        and ctl.uftp.dso.log.offers_booked == 1
                    )
                )
                cleared = await http.post("/market/clear", headers={"Authorization": f"Bearer {OPERATOR}"})
                assert cleared.status_code == 200, cleared.text
                [order] = cleared.json()["orders"]
                assert (order["fsp"], order["factor"]) == ("fsp-a", pytest.approx(1.0, abs=1e-6))
                assert order["price_eur"] == pytest.approx(6.0, abs=1e-6)
                assert [i["kw"] for i in order["isps"]] == pytest.approx([15.0] * 4)
                dso = ctl.uftp.dso
                await wait_for(lambda: all(o.result for o in dso.orders.values()) and len(dso.orders) == 1)
                assert (await http.get("/uftp/status")).status_code == 401  # roles on: a viewer's read
                status = (
                    await http.get("/uftp/status", headers={"Authorization": f"Bearer {OPERATOR}"})
                ).json()
                got = await party.finish()
            finally:
                party.kill()
    finally:
        ctl.store.close()
        ctl.dr.close()
        ctl.market.close()
        await ctl.uftp.aclose()

    assert [o.result for o in dso.orders.values()] == ["Accepted"]
    assert got["errors"] == []
    flex_order = next(m for m in got["received"] if m["type"] == "FlexOrder")
    assert (flex_order["price"], flex_order["activation_factor"]) == ("6.0000", "1.00")
    assert [(i["power"], i["start"]) for i in flex_order["isps"]] == [(-15000, n) for n in (73, 74, 75, 76)]
    assert (
        status["sent"] == 3 and status["received"] == 3
    )  # request, offer response, order / 2 responses + offer
    assert status["refused"] == {} and status["handler_errors"] == 0


AGR_CONTRACTS = """
contracts:
  - {site: a1, program: dso-test, directions: [reduce], p_max_kw: 10, events_per_day: 3, max_duration: PT4H}
"""


async def test_controller_as_agr_answers_the_library_dso_from_its_dr_path(tmp_path: Path) -> None:
    uftp_python()
    theirs = SigningKey.generate()
    party = Party(
        {
            "mode": "dso",
            "domain": "dso.test",
            "private_key": theirs.private_b64,
            "request": {
                "period": "2030-01-15",
                "congestion_point": "ea1.2030-01.dso.test:mv-1",
                "expiration": "2030-01-15T15:00:00+00:00",
                "isps": [{"min_power": -8000, "max_power": 0, "start": 73, "duration": 2}],
            },
        }
    )
    (tmp_path / "operator").write_text(OPERATOR, encoding="utf-8")
    (tmp_path / "contracts.yaml").write_text(AGR_CONTRACTS, encoding="utf-8")
    cfg = CloudConfig.model_validate(
        {
            "store": {"path": str(tmp_path / "s.sqlite")},
            "api": {"operator_token_file": str(tmp_path / "operator")},
            "dr": {"contracts": str(tmp_path / "contracts.yaml")},
            "market": {
                "uftp": {
                    "enabled": True,
                    "roles": ["AGR"],
                    "peers": [
                        {
                            "domain": "dso.test",
                            "role": "DSO",
                            "endpoint": party.endpoint,
                            "public_key": theirs.public_b64,
                            "program": "dso-test",
                            "congestion_points": {"ea1.2030-01.dso.test:mv-1": ["a1"]},
                            "eans": {AGR_EAN: "a1"},
                        }
                    ],
                }
            },
        }
    )
    clock = SimClock(NOW)
    ctl = CloudController(cfg, REGISTRY, clock=clock)
    assert ctl.uftp is not None and ctl.uftp.agr is not None and ctl.uftp.dso is None
    agr = ctl.uftp.agr
    prognoses = agr.prognoses
    assert prognoses is not None
    try:
        async with serving(create_app(ctl)) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
            party.job["peer"] = {
                "domain": "gridflex.test",
                "public_key": ctl.uftp.node.key.public_b64,
                "endpoint": f"{url}/uftp/agr",
            }
            await party.start()
            try:
                await wait_for(
                    lambda: len(agr.orders) == 1 or agr.log.orders_rejected or agr.log.requests_rejected
                )
                # after delivery (ISPs 73-74: 17:00-17:30 UTC) the Metering of a1's meter
                ctl.store.write_samples(
                    "a1",
                    [
                        Sample(
                            seq=k,
                            asset="meter",
                            point="p_kw",
                            value=6.0,
                            unit="kW",
                            ts=T73_UTC + timedelta(minutes=k),
                        )
                        for k in range(30)
                    ],
                )
                clock.advance(6 * 3600.0)  # 18:00 UTC: past the Metering the order scheduled (17:45)
                await wait_for(
                    lambda: [m.result for m in prognoses.metering.values()] == ["Accepted"],
                    what="the scheduled Metering's MeteringResponse",
                )
                await wait_for(
                    lambda: [p.result for p in prognoses.prognoses.values()] == ["Accepted"] * 2,
                    what="the re-sent D-Prognosis's response",
                )
                # the operator sends the day's Metering again by hand: Revision 2
                assert (await http.post("/uftp/metering/2030-01-15")).status_code == 401
                by_hand = await http.post(
                    "/uftp/metering/2030-01-15", headers={"Authorization": f"Bearer {OPERATOR}"}
                )
                assert by_hand.status_code == 200, by_hand.text
                assert [m["revision"] for m in by_hand.json()["sent"]] == [2]
                await wait_for(
                    lambda: [m.result for m in prognoses.metering.values()] == ["Accepted"] * 2,
                    what="the second MeteringResponse",
                )
                await ctl.uftp.node.idle()
                listed = (
                    await http.get("/dr/requests", headers={"Authorization": f"Bearer {OPERATOR}"})
                ).json()
                got = await party.finish()
            finally:
                party.kill()
    finally:
        ctl.store.close()
        ctl.dr.close()
        ctl.market.close()
        await ctl.uftp.aclose()

    assert agr.log.requests_rejected == [] and agr.log.orders_rejected == []
    assert got["errors"] == []
    by_type = {m["type"]: m for m in got["received"]}
    [opt] = by_type["FlexOffer"]["offer_options"]
    assert [(i["power"], i["start"]) for i in opt["isps"]] == [(-8000, 73), (-8000, 74)]
    assert opt["price"] == "1.2000"
    assert by_type["FlexOrderResponse"]["result"] == "Accepted"
    # the D-Prognosis of a1's point: no plan and no measurement yet, so 0 W in each of the 96 ISPs, Accepted;
    # the order (8 kW down in ISPs 73-74) changed it: Revision 2 once the 900 s interval had passed
    first, second = [m for m in got["received"] if m["type"] == "DPrognosis"]
    assert [(i["power"], i["start"], i["duration"]) for i in first["isps"]] == [(0, 1, 96)]
    assert [(i["power"], i["start"], i["duration"]) for i in second["isps"]] == [
        (0, 1, 72),
        (-8000, 73, 2),
        (0, 75, 22),
    ]
    assert (first["revision"], second["revision"]) == (1, 2)
    assert by_type["FlexOffer"]["d_prognosis_message_id"] == first["message_id"]
    assert [p.result for p in prognoses.prognoses.values()] == ["Accepted", "Accepted"]
    assert [(i["start"], i["value"]) for i in by_type["Metering"]["profiles"][0]["isps"]] == [
        (73, "6.000"),
        (74, "6.000"),
    ]
    assert [m.result for m in prognoses.metering.values()] == ["Accepted", "Accepted"]
    [executed] = agr.orders.values()
    assert executed.status == "selected" and executed.ordered_w == {73: -8000, 74: -8000}
    # only the order is a DR request (the offer's dry run recorded none), 8 kW per ISP, the DSO's service type
    assert [(r["request"]["request_id"], r["status"]) for r in listed] == [
        (executed.dr_request_id, "selected")
    ]
    assert [iv["p_kw"] for iv in listed[0]["request"]["intervals"]] == [8.0, 8.0]
    assert listed[0]["request"]["service_type"] == "uftp"
