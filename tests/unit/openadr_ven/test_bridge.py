"""The VEN bridge against a real CloudController app (its VTN and its DR API, in-process ASGI), with a SimClock.

One contract (site a, peak, reduce ≤ 20 kW). A FLEX dispatch 17:00-19:00 of 10.01 kW is
submitted once (a second poll of the unchanged event posts nothing); a changed event
(12 kW) cancels the old request and submits a new one; after the dispatch, with the site's
baseline 50 kW (its snapshot at selection) and its meter at 35 kW, the DR report says 15 kW
delivered per step, and the bridge posts a DELIVERED_FLEX report of 15.0 kW on the VTN
under the VEN's client id. The loop's sleep is the clock's: each poll follows an advance.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import yaml

from cloud_controller.api import create_app
from cloud_controller.config import CloudConfig
from cloud_controller.live.types import SiteSnapshot
from cloud_controller.openadr.from_forecast import INTERNAL_BL
from cloud_controller.openadr.ven.bridge import Bridge
from cloud_controller.openadr.ven.clients import DrApiClient, VtnClient
from cloud_controller.openadr.ven.config import VenConfig, VenCredentials
from cloud_controller.registry import Registry
from cloud_controller.service import CloudController
from protocols.clock import SimClock
from protocols.messages import Sample

OPERATOR = "operator-0123456789abcdef"
NOW = datetime(2030, 1, 15, 16, 0, tzinfo=UTC)
CONTRACTS = """
contracts:
  - {site: a, program: peak, directions: [reduce], p_max_kw: 20, events_per_day: 3,
     max_duration: PT2H, min_notice: PT30M}
"""


def _flex_event(program_id: str, kw: float) -> dict[str, Any]:
    return {
        "programID": program_id,
        "eventName": "flex-station-1",
        "targets": ["station-1"],
        "payloadDescriptors": [{"payloadType": "FLEX", "units": "KW"}],
        "intervals": [
            {
                "id": 0,
                "intervalPeriod": {"start": "2030-01-15T16:00:00Z", "duration": "PT1H"},
                "payloads": [{"type": "FLEX", "values": [0.0]}],
            },
            {
                "id": 1,
                "intervalPeriod": {"start": "2030-01-15T17:00:00Z", "duration": "PT2H"},
                "payloads": [{"type": "FLEX", "values": [kw]}],
            },
        ],
    }


@dataclass
class Rig:
    ctl: CloudController
    clock: SimClock
    bridge: Bridge
    ven_id: str
    program_id: str


def _cfg(tmp: Path) -> CloudConfig:
    (tmp / "contracts.yaml").write_text(CONTRACTS, encoding="utf-8")
    (tmp / "op").write_text(OPERATOR, encoding="utf-8")
    return CloudConfig.model_validate(
        {
            "store": {"path": str(tmp / "s.sqlite")},
            "control": {"dispatch": False},  # no lease to hold: the activator may report
            "api": {"operator_token_file": str(tmp / "op")},
            "dr": {"contracts": str(tmp / "contracts.yaml"), "report_after_s": 0},
            "openadr": {"enabled": True, "credentials_file": str(tmp / "oa3.yaml")},
        }
    )


def _ven_config(tmp: Path, base: str) -> VenConfig:
    return VenConfig.model_validate(
        {
            "vtn": {"url": f"{base}/openadr3", "ven_name": "gridflex-agg"},
            "dr_api": {"url": base, "operator_token_file": str(tmp / "op")},
            "programs": [{"program": "congestion-nl", "dr_program": "peak"}],
            "state_file": str(tmp / "ven-state.json"),
        }
    )


@pytest_asyncio.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    clock = SimClock(NOW)
    ctl = CloudController(_cfg(tmp_path), Registry(sites=()), clock=clock)
    assert ctl.openadr is not None
    ctl.snapshots["a"] = SiteSnapshot(site="a", mode="online", p_net_kw=50.0)
    ven = next(
        c for c in yaml.safe_load((tmp_path / "oa3.yaml").read_text())["clients"] if c["role"] == "ven"
    )
    program = ctl.openadr.vtn.create(INTERNAL_BL, "programs", {"programName": "congestion-nl"})
    base = "http://127.0.0.1:8080"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(ctl)), base_url=base) as http:
        creds = VenCredentials(client_id=ven["client_id"], secret=ven["secret"])
        bridge = Bridge(
            _ven_config(tmp_path, base),
            VtnClient(http, f"{base}/openadr3", creds, clock=clock),
            DrApiClient(http, base, OPERATOR),
            clock=clock,
        )
        yield Rig(ctl, clock, bridge, ven["client_id"], str(program["id"]))
    ctl.openadr.close()
    ctl.store.close()
    ctl.dr.close()
    ctl.market.close()


async def _until(cond: Callable[[], bool], what: str) -> None:
    for _ in range(500):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.asyncio
async def test_event_submitted_once_changed_event_replaces_its_request_and_delivery_is_reported(
    rig: Rig,
) -> None:
    vtn = rig.ctl.openadr.vtn  # type: ignore[union-attr]
    event = vtn.create(INTERNAL_BL, "events", _flex_event(rig.program_id, 10.01))
    stats = rig.bridge.stats
    task = asyncio.create_task(rig.bridge.run())
    try:
        await _until(lambda: stats.polls == 1, "the first poll")
        assert (stats.events_seen, stats.submitted, stats.accepted, stats.last_error) == (1, 1, 1, None)
        (first,) = rig.ctl.dr.requests.all()
        assert (first.status, first.request.program, first.request.p_kw) == ("selected", "peak", 10.01)
        assert len(first.request.intervals) == 8  # 2 h of 15-minute steps

        rig.clock.advance(30)  # the loop's sleep: the second poll, nothing new
        await _until(lambda: stats.polls == 2, "the second poll")
        assert stats.submitted == 1

        vtn.update(INTERNAL_BL, "events", event["id"], _flex_event(rig.program_id, 12.0))
        rig.clock.advance(30)
        await _until(lambda: stats.polls == 3, "the third poll")
        assert (stats.events_changed, stats.cancelled, stats.submitted) == (1, 1, 2)
        by_id = {r.request.request_id: r for r in rig.ctl.dr.requests.all()}
        assert by_id[first.request.request_id].status == "cancelled"
        (second,) = [r for r in by_id.values() if r.status != "cancelled"]
        assert second.request.p_kw == 12.0

        # the dispatch runs: the site's meter at 35 kW against its 50 kW baseline
        rig.ctl.store.write_samples(  # agents report at least every poll.max_age_s: one sample per step
            "a",
            [
                Sample(
                    seq=k,
                    asset="meter",
                    point="p_kw",
                    value=35.0,
                    unit="kW",
                    ts=NOW + timedelta(minutes=60 + 15 * k),
                )
                for k in range(8)
            ],
        )
        rig.clock.advance((datetime(2030, 1, 15, 19, 0, 1, tzinfo=UTC) - rig.clock.now()).total_seconds())
        await rig.ctl.dr_activator.tick()
        dr_report = rig.ctl.dr_activator.report(second.request.request_id)
        assert dr_report is not None and dr_report["intervals_reported"] == 8
        await _until(lambda: stats.reports_created == 1, "the VTN report")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    (report,) = vtn.store.all("reports")
    assert (report["clientID"], report["clientName"], report["eventID"]) == (
        rig.ven_id,
        "gridflex-agg",
        event["id"],
    )
    (res,) = report["resources"]
    assert res["resourceName"] == "station-1"
    assert res["intervals"] == [
        {
            "id": 1,
            "intervalPeriod": {"start": "2030-01-15T17:00:00Z", "duration": "PT2H"},
            "payloads": [{"type": "DELIVERED_FLEX", "values": [15.0]}],
        }
    ]
    status = rig.bridge.status()["events"][event["id"]]
    assert status["report_id"] == report["id"] and status["reported_intervals"] == 1


@pytest.mark.asyncio
async def test_restart_with_the_state_file_resubmits_nothing_and_an_unmapped_event_keeps_its_reason(
    rig: Rig,
) -> None:
    vtn = rig.ctl.openadr.vtn  # type: ignore[union-attr]
    vtn.create(INTERNAL_BL, "events", _flex_event(rig.program_id, 10.01))
    bad = _flex_event(rig.program_id, 5.0)
    bad["intervals"][1]["payloads"] = [{"type": "EXPORT_CAPACITY_LIMIT", "values": [5.0]}]
    bad_id = vtn.create(INTERNAL_BL, "events", {**bad, "eventName": "export"})["id"]
    await rig.bridge.poll_once()
    assert (rig.bridge.stats.submitted, rig.bridge.stats.unmapped) == (1, 1)
    assert "'EXPORT_CAPACITY_LIMIT' is not mapped" in str(rig.bridge.status()["events"][bad_id]["unmapped"])
    again = Bridge(rig.bridge.cfg, rig.bridge.vtn, rig.bridge.dr, clock=rig.clock)  # a restarted VEN
    await again.poll_once()
    assert (again.stats.submitted, again.stats.unmapped, again.stats.events_seen) == (0, 0, 0)
    assert len(rig.ctl.dr.requests.all()) == 1


@pytest.mark.asyncio
async def test_an_unreachable_vtn_is_counted_and_named_not_raised(tmp_path: Path) -> None:
    clock = SimClock(NOW)
    (tmp_path / "op").write_text(OPERATOR, encoding="utf-8")
    dead = "http://127.0.0.1:9"  # discard port: nothing listens on loopback
    async with httpx.AsyncClient(timeout=2) as http:
        creds = VenCredentials(client_id="ven-1", secret="x" * 16)
        cfg = _ven_config(tmp_path, dead)
        bridge = Bridge(
            cfg,
            VtnClient(http, cfg.vtn.url, creds, clock=clock),
            DrApiClient(http, dead, OPERATOR),
            clock=clock,
        )
        stats = await bridge.poll_once()
    assert (stats.polls, stats.poll_errors) == (1, 1)
    assert stats.last_error is not None and stats.last_error.startswith("GET /auth/server: no answer")


@pytest.mark.asyncio
async def test_a_refused_token_is_replaced_once_and_the_poll_goes_on(rig: Rig) -> None:
    await rig.bridge.poll_once()
    assert rig.bridge.vtn.tokens_fetched == 1
    rig.bridge.vtn._token = "forged-token"  # still "valid" by its expiry: the VTN answers 401
    stats = await rig.bridge.poll_once()
    assert (stats.poll_errors, stats.last_error, rig.bridge.vtn.tokens_fetched) == (0, None, 2)
