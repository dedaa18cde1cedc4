"""ElaadNL's openadr3-client (BL and VEN, Python 3.12, own venv) against GridFlex's VTN over real HTTP.

The client runs as a subprocess (`oa3_party.py`) with `.venv-oa3/bin/python` (`make openadr-venv`);
GridFlex's VTN is the controller's own app under uvicorn on loopback. One run of the other party
covers: token discovery and the client-credentials grant, the BL creating a programme and an
event, the VEN reading them and posting a report, a VEN refused a programme write, and the
NL flex profile's validator on GridFlex's congestion events.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud_controller.openadr.congestion_events import (
    CongestionPoint,
    capacity_limit_event,
    flex_dispatch_event,
)
from cloud_controller.openadr.store import OpenAdrStore
from tests.integration.openadr.vtn_server import bearer, clients_of, config, serving

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
PARTY = Path(__file__).with_name("oa3_party.py")


def oa3_python() -> Path:
    """The other party's interpreter; missing is a set-up error in CI (never a silent skip)."""
    py = Path(os.environ.get("GRIDFLEX_OA3_PYTHON", ROOT / ".venv-oa3" / "bin" / "python"))
    if not py.exists():
        msg = (
            f"{py} missing: build the OpenADR 3 client's venv with `make openadr-venv` "
            "(Python >= 3.12 and PyPI, or a pip mirror, needed)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return py


def run_party(job: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "OAUTHLIB_INSECURE_TRANSPORT": "1"}
    proc = subprocess.run(
        [str(oa3_python()), str(PARTY)],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, f"openadr3-client party failed:\n{proc.stderr[-4000:]}"
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _station() -> CongestionPoint:
    """Station over its 100 kW limit from 17:00 to 18:15 (worst 112.5 kW), day-ahead window from 00:00."""
    start = datetime(2026, 12, 3, 0, 0, tzinfo=UTC)
    load = [80.0] * 96
    for k, kw in zip(range(68, 73), (104.0, 110.0, 112.5, 106.0, 101.0), strict=True):
        load[k] = kw
    return CongestionPoint("station-7", start, timedelta(minutes=15), load, 100.0)


def test_bl_and_ven_clients_round_trip_and_nlflex_accepts_the_flex_event(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    with serving(cfg) as vtn:
        creds = clients_of(cfg)
        # GridFlex's own events from the forecast, posted over HTTP with the BL's token
        bl_headers = bearer(vtn.url, *creds["bl"])
        prog = httpx.post(
            f"{vtn.url}/programs", json={"programName": "congestion-nl"}, headers=bl_headers, timeout=30
        )
        assert prog.status_code == 201, prog.text
        point = _station()
        flex, plan = flex_dispatch_event(point, prog.json()["id"], window_start=point.start)
        plain = capacity_limit_event(point, prog.json()["id"])
        long_day = CongestionPoint(
            "station-8",
            point.start,
            point.step,
            [80.0] * 32 + [103.0] * 20 + [80.0] * 28 + [104.0] + [80.0] * 15,
            100.0,
        )
        two, _ = flex_dispatch_event(long_day, prog.json()["id"], window_start=point.start)  # PT6H and PT2H
        ids = []
        for ev in (flex, plain, two):
            r = httpx.post(f"{vtn.url}/events", json=ev, headers=bl_headers, timeout=30)
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])

        out = run_party(
            {
                "vtn_url": vtn.url,
                "bl_id": creds["bl"][0],
                "bl_secret": creds["bl"][1],
                "ven_id": creds["ven"][0],
                "ven_secret": creds["ven"][1],
                "program_name": "capacity-pilot",
                "limits_kw": [40.0, 35.5],
                "usage_kw": [38.2, 35.1],
                "nlflex_event_ids": ids,
            }
        )

    assert out["ven_programs"] == ["congestion-nl", "capacity-pilot"]
    assert out["ven_events"] == [{"id": out["event_id"], "limits_kw": [40.0, 35.5]}]
    assert out["report_client_id"] == creds["ven"][0]
    assert out["ven_reports"] == [out["report_id"]]
    assert out["bl_reads_reports"] is True
    assert out["ven_program_write"] == 403
    # the Dutch profile: GridFlex's FLEX dispatch passes, the plain IMPORT_CAPACITY_LIMIT event matches no kind
    assert out["nlflex"][ids[0]] == {"kind": "FLEXIBILITY_DISPATCH", "errors": []}
    assert out["nlflex"][ids[1]]["kind"] == "None" and out["nlflex"][ids[1]]["errors"]
    assert out["nlflex"][ids[2]] == {"kind": "FLEXIBILITY_DISPATCH", "errors": []}
    assert [iv["intervalPeriod"]["duration"] for iv in two["intervals"]] == [
        "PT1H",
        "PT6H",
        "PT1H",
        "PT1H",
        "PT2H",
        "PT1H",
    ]
    assert [(d.start.hour, d.duration, d.flex_kw) for d in plan.dispatches] == [
        (17, timedelta(hours=2), 12.5)
    ]

    # the report as the server stored it (its SQLite file, read after the server stopped)
    store = OpenAdrStore(tmp_path / "openadr.sqlite")
    try:
        report = store.get("reports", out["report_id"])
    finally:
        store.close()
    assert report is not None
    assert report["clientID"] == creds["ven"][0] and report["eventID"] == out["event_id"]
    assert report["programID"] == out["program_id"]
    usage = [iv["payloads"][0] for iv in report["resources"][0]["intervals"]]
    assert usage == [{"type": "USAGE", "values": [38.2]}, {"type": "USAGE", "values": [35.1]}]
    assert report["createdDateTime"] == report["modificationDateTime"]
