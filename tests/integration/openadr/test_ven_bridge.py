"""GridFlex's VEN bridge end to end: the library's BL writes an event, the VEN turns it into a DR request, the BL reads the report.

Parties, all real, on loopback: the controller's app under uvicorn (its VTN — the
"utility's" VTN here — and its DR API, with the DR activator's loop running beside it), the
ElaadNL `openadr3-client` BL in its 3.12 venv (`ven_party.py`, one subprocess for the whole
test), and the VEN bridge over plain HTTP with its own httpx client and the VTN's VEN
credentials.

Numbers: one contract (site a, reduce ≤ 20 kW, no minimum notice); the site's snapshot at
selection says 50 kW (the baseline) and its meter reads 35 kW, so a FLEX interval of 10 kW
delivers 15 kW; the BL reads back a DELIVERED_FLEX report of 15.0 kW under the VEN's client.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from cloud_controller.openadr.ven.bridge import Bridge
from cloud_controller.openadr.ven.clients import DrApiClient
from cloud_controller.openadr.ven.config import VenConfig
from cloud_controller.service import CloudController
from protocols.clock import RealClock, SimClock
from protocols.messages import Sample
from tests.integration.openadr.test_subscriptions import Receiver
from tests.integration.openadr.ven_setup import (
    OPERATOR,
    Party,
    bridge_config,
    serving_app,
    ven_clients,
    wait_for,
)
from tests.integration.openadr.vtn_server import bearer, clients_of

MakeController = Callable[..., CloudController]
StartParty = Callable[[str, dict[str, tuple[str, str]]], Party]

pytestmark = pytest.mark.integration


async def _true(value: bool) -> bool:
    return value


async def test_library_event_becomes_a_dr_request_and_its_delivery_a_report_the_library_reads(
    tmp_path: Path, bridge_controller: MakeController, bl_party: StartParty
) -> None:
    cfg = bridge_config(tmp_path, callback_hosts=["127.0.0.1"])
    ctl = bridge_controller(cfg)
    creds = clients_of(cfg)
    receiver = Receiver()  # the utility's BL hears of our report by callback, too
    try:
        with serving_app(ctl) as base:
            vtn_url = f"{base}/openadr3"
            party = bl_party(vtn_url, creds)
            sub = {
                "clientName": "utility-bl",
                "objectOperations": [
                    {"objects": ["REPORT"], "operations": ["POST"], "callbackUrl": receiver.url}
                ],
            }
            posted = await asyncio.to_thread(
                lambda: httpx.post(
                    f"{vtn_url}/subscriptions", json=sub, headers=bearer(vtn_url, *creds["bl"]), timeout=10
                )
            )
            assert posted.status_code == 201, posted.text
            t0 = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)  # 1-2 s ahead
            _meter_35_kw(ctl, t0 - timedelta(seconds=2))
            made = party.ask(
                {
                    "op": "event",
                    "program_name": "utility-flex",
                    "event_name": "flex-station-1",
                    "target": "station-1",
                    "intervals": [[t0.isoformat(), 1, 10.0]],
                }
            )
            ven_cfg = VenConfig.model_validate(
                {
                    "vtn": {"url": vtn_url, "ven_name": "gridflex-agg"},
                    "dr_api": {"url": base, "operator_token_file": str(tmp_path / "op")},
                    "programs": [{"program": "utility-flex", "dr_program": "peak"}],
                }
            )
            clock = RealClock()
            async with httpx.AsyncClient(timeout=10) as http:
                bridge = Bridge(ven_cfg, *ven_clients(http, vtn_url, base, creds["ven"], clock), clock=clock)
                stats = await bridge.poll_once()
                assert (stats.events_seen, stats.accepted, stats.last_error) == (1, 1, None)
                (record,) = ctl.dr.requests.all()
                assert (record.request.program, record.request.p_kw, record.request.start) == (
                    "peak",
                    10.0,
                    t0,
                )
                assert record.status in ("selected", "active")

                async def delivered() -> bool:
                    rep = await DrApiClient(http, base, OPERATOR).report(record.request.request_id)
                    return rep is not None and rep["intervals_reported"] == 1

                await wait_for(delivered, "the DR delivery of the 1-second interval")
                stats = await bridge.poll_once()
                assert (stats.reports_created, stats.last_error) == (1, None)
            reports = party.ask({"op": "reports", "event_id": made["event_id"]})
            subscriptions = party.ask({"op": "subscriptions"})
            await wait_for(lambda: _true(len(receiver.got) == 1), "the report's notification")
    finally:
        receiver.close()

    (report,) = reports
    assert (report["client_id"], report["client_name"]) == (creds["ven"][0], "gridflex-agg")
    assert subscriptions == [
        {"client_name": "utility-bl", "callbacks": [receiver.url], "objects": ["REPORT"]}
    ]
    ((_, note),) = receiver.got
    assert (note["objectType"], note["operation"], note["object"]["id"]) == ("REPORT", "POST", report["id"])
    assert report["resources"] == [
        {"name": "station-1", "intervals": [{"id": 0, "type": "DELIVERED_FLEX", "values": [15.0]}]}
    ]


def _ven_cli(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """`python -m gridflex ven run FILE --once` as an operator runs it (its own process); its status JSON."""
    proc = subprocess.run(
        [sys.executable, "-m", "gridflex", "ven", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )
    assert proc.returncode == 0, (
        f"gridflex ven failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}"
    )
    return dict(json.loads(proc.stdout))


@pytest.mark.slow
async def test_nl_flex_day_through_the_cli_two_dispatches_one_report_and_a_restart_resubmits_nothing(
    tmp_path: Path, bridge_controller: MakeController, bl_party: StartParty
) -> None:
    """An NL-shaped FLEX event (0 kW hour, 10 kW dispatch, 0 kW hour, 6 kW dispatch) → two DR requests → one report.

    The VEN runs as `gridflex ven run FILE --once`, three times over one state file: the first
    submits both dispatches, the second (after both are delivered) posts the report with
    intervals 1 and 3 at 15 kW each, the third finds nothing to do.
    """
    cfg = bridge_config(tmp_path)
    ctl = bridge_controller(cfg)
    creds = clients_of(cfg)
    with serving_app(ctl) as base:
        vtn_url = f"{base}/openadr3"
        party = bl_party(vtn_url, creds)
        ven_file = tmp_path / "ven.yaml"
        ven_file.write_text(
            yaml.safe_dump(
                {
                    "vtn": {"url": vtn_url, "ven_name": "gridflex-agg"},
                    "dr_api": {"url": base, "operator_token_file": "op"},
                    "programs": [{"program": "utility-flex", "dr_program": "peak"}],
                    "state_file": "ven-state.json",
                }
            ),
            encoding="utf-8",
        )
        env = {"GRIDFLEX_VEN_CLIENT_ID": creds["ven"][0], "GRIDFLEX_VEN_CLIENT_SECRET": creds["ven"][1]}
        # the CLI starts in ~2 s on a quiet machine and took over 6 s at load 4-9 (both
        # dispatches then began before it read them: 0 of 2 accepted): 20 s of lead
        t0 = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=20)
        _meter_35_kw(ctl, t0 - timedelta(seconds=3))
        sec = timedelta(seconds=1)
        rows: list[tuple[datetime, int, float]] = [
            (t0, 1, 0.0),
            (t0 + sec, 2, 10.0),
            (t0 + 3 * sec, 1, 0.0),
            (t0 + 4 * sec, 1, 6.0),
        ]
        made = party.ask(
            {
                "op": "event",
                "program_name": "utility-flex",
                "event_name": "flex-station-1-day",
                "target": "station-1",
                "intervals": [[t.isoformat(), s, kw] for t, s, kw in rows],
            }
        )
        first = await asyncio.to_thread(_ven_cli, ["run", str(ven_file), "--once"], env)
        assert (first["stats"]["accepted"], first["stats"]["last_error"]) == (2, None)
        requests = sorted(ctl.dr.requests.all(), key=lambda r: r.request.start)
        assert [(r.request.start, r.request.p_kw) for r in requests] == [
            (t0 + sec, 10.0),
            (t0 + 4 * sec, 6.0),
        ]

        async def delivered() -> bool:
            reps = [ctl.dr_activator.report(r.request.request_id) for r in requests]
            return all(rep is not None and rep["intervals_reported"] == 1 for rep in reps)

        await wait_for(delivered, "both dispatches delivered", timeout_s=45.0)
        second = await asyncio.to_thread(_ven_cli, ["run", str(ven_file), "--once"], env)
        assert (second["stats"]["reports_created"], second["stats"]["submitted"]) == (1, 0)
        third = await asyncio.to_thread(_ven_cli, ["run", str(ven_file), "--once"], env)
        assert (
            third["stats"]["submitted"],
            third["stats"]["reports_created"],
            third["stats"]["reports_updated"],
        ) == (
            0,
            0,
            0,
        )
        reports = party.ask({"op": "reports", "event_id": made["event_id"]})
    (report,) = reports
    assert report["resources"][0]["intervals"] == [
        {"id": 1, "type": "DELIVERED_FLEX", "values": [15.0]},
        {"id": 3, "type": "DELIVERED_FLEX", "values": [15.0]},
    ]


async def test_nl_profile_ack_and_delivery_reports_pass_the_nlflex_validators(
    tmp_path: Path, bridge_controller: MakeController, bl_party: StartParty
) -> None:
    """`profile: nlflex` on a SimClock: an NL FLEX day (0 / 10.01 kW for PT2H / 0) → ACK, then the delivery report.

    The library's BL reads both reports back and the nlflex plugin's direct validators find
    no error in either — the delivery report also checked against the event's intervals
    (same ids and periods, adjacent hours included, one value per 15 min): 4 × 0, 8 × 15, 4 × 0.
    """
    clock = SimClock(datetime(2030, 1, 15, 15, 0, tzinfo=UTC))
    cfg = bridge_config(tmp_path, token_ttl_s=86400)  # the clock jumps 4 h: tokens outlive it
    ctl = bridge_controller(cfg, clock)
    ctl.store.write_samples(
        "a",
        [
            Sample(
                seq=k,
                asset="meter",
                point="p_kw",
                value=35.0,
                unit="kW",
                ts=datetime(2030, 1, 15, 17, 15 * k % 60, tzinfo=UTC) + timedelta(hours=k // 4),
            )
            for k in range(8)
        ],
    )
    creds = clients_of(cfg)
    loops: list[asyncio.AbstractEventLoop] = []
    with serving_app(ctl, loops) as base:
        vtn_url = f"{base}/openadr3"
        party = bl_party(vtn_url, creds)
        made = party.ask(
            {
                "op": "event",
                "program_name": "utility-nl",
                "event_name": "flex-station-1-20300115",
                "target": "station-1",
                "intervals": [
                    ["2030-01-15T16:00:00+00:00", 3600, 0.0],
                    ["2030-01-15T17:00:00+00:00", 7200, 10.01],
                    ["2030-01-15T19:00:00+00:00", 3600, 0.0],
                ],
            }
        )
        ven_cfg = VenConfig.model_validate(
            {
                "vtn": {"url": vtn_url, "ven_name": "8719999000008"},
                "dr_api": {"url": base, "operator_token_file": str(tmp_path / "op")},
                "programs": [{"program": "utility-nl", "dr_program": "peak", "profile": "nlflex"}],
            }
        )
        async with httpx.AsyncClient(timeout=10) as http:
            bridge = Bridge(ven_cfg, *ven_clients(http, vtn_url, base, creds["ven"], clock), clock=clock)
            stats = await bridge.poll_once()
            assert (stats.accepted, stats.acks_posted, stats.reports_created, stats.last_error) == (
                1,
                1,
                0,
                None,
            )
            clock.advance(4 * 3600 + 10)  # 19:00:10: the dispatch is over (report_after_s 0)
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(ctl.dr_activator.tick(), loops[0]))
            stats = await bridge.poll_once()
            assert (stats.reports_created, stats.last_error) == (
                0,
                None,
            )  # the adjacent hour runs until 20:00
            clock.advance(3600)
            stats = await bridge.poll_once()
            assert (stats.reports_created, stats.acks_posted, stats.last_error) == (1, 1, None)
        checks = party.ask({"op": "nl_check", "event_id": made["event_id"]})
    by_kind = {c["kind"]: c for c in checks}
    assert sorted(by_kind) == ["FLEX_ACKNOWLEDGMENT", "FLEX_DELIVERY"]
    assert by_kind["FLEX_ACKNOWLEDGMENT"]["errors"] == [] and by_kind["FLEX_DELIVERY"]["errors"] == []
    assert by_kind["FLEX_ACKNOWLEDGMENT"]["values"] == [[True]]
    assert by_kind["FLEX_DELIVERY"]["values"] == [[0.0] * 4, [15.0] * 8, [0.0] * 4]


def _meter_35_kw(ctl: Any, at: datetime) -> None:
    """Site a's meter reads 35 kW from `at` (its baseline is 50 kW: 15 kW delivered)."""
    ctl.store.write_samples("a", [Sample(seq=0, asset="meter", point="p_kw", value=35.0, unit="kW", ts=at)])
