"""GridFlex's VEN registers itself and subscribes at GridFlex's own VTN, over real HTTP on loopback.

Registration: three `--once` runs of the VEN service (the second over the same state file,
the third without it) leave exactly one VEN object `gridflex-agg` (under the VEN's client
id) and its two resources on the VTN; a changed resource target is one `PUT`, same ids.

Subscription: the controller's app under uvicorn (VTN + DR API, notifications to
127.0.0.1 allowed), the VEN service running with `subscribe: true` and a poll interval of
an hour, ElaadNL's `openadr3-client` BL (`ven_party.py`) as the utility. Its first event
creates the programme (seen by the VEN's first poll, which then subscribes); its second
event reaches the VEN only through the VTN's notification — the DR request for it exists
long before any timer poll could have run. A notification with a wrong bearer token (or
none) is refused 401 and counted, and wakes nothing. At the stop the subscription is gone.
`@slow`: the same stop through `gridflex ven run FILE` and SIGTERM, in its own process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud_controller.openadr.ven import VenConfig, VenService
from cloud_controller.service import CloudController
from protocols.clock import RealClock
from tests.integration.openadr.ven_setup import (
    OPERATOR,
    Party,
    bridge_config,
    serving_app,
    ven_clients,
    wait_for,
)
from tests.integration.openadr.vtn_server import bearer, clients_of, config, serving

pytestmark = pytest.mark.integration


def _ven_cfg(vtn_url: str, tmp: Path, **extra: Any) -> VenConfig:
    return VenConfig.model_validate(
        {
            "vtn": {"url": vtn_url, "ven_name": "gridflex-agg"},
            "dr_api": {"url": "http://127.0.0.1:9", "operator_token_file": str(tmp / "op")},
            "programs": [{"program": "utility-flex", "dr_program": "peak"}],
            "state_file": str(tmp / "ven-state.json"),
            **extra,
        }
    )


async def _once(cfg: VenConfig, vtn_url: str, creds: tuple[str, str]) -> dict[str, Any]:
    clock = RealClock()
    async with httpx.AsyncClient(timeout=10) as http:
        service = VenService(cfg, *ven_clients(http, vtn_url, cfg.dr_api.url, creds, clock), clock=clock)
        return await service.run(once=True)


async def test_registration_twice_and_without_state_leaves_one_ven_object_and_its_resources(
    tmp_path: Path,
) -> None:
    cfg = config(tmp_path)
    registration = {
        "targets": ["station-1"],
        "attributes": [{"type": "LOCATION", "values": [52.09, 5.12]}],
        "resources": [
            {"resource_name": "site-a", "targets": ["station-1"]},
            {"resource_name": "site-b"},
        ],
    }
    with serving(cfg) as vtn:
        creds = clients_of(cfg)  # written by the VTN at its start
        ven_cfg = _ven_cfg(vtn.url, tmp_path, registration=registration)
        first = await _once(ven_cfg, vtn.url, creds["ven"])
        second = await _once(ven_cfg, vtn.url, creds["ven"])
        state = json.loads((tmp_path / "ven-state.json").read_text())
        (tmp_path / "ven-state.json").unlink()
        third = await _once(ven_cfg, vtn.url, creds["ven"])
        moved = {**registration, "resources": [{"resource_name": "site-a", "targets": ["station-2"]}]}
        fourth = await _once(_ven_cfg(vtn.url, tmp_path, registration=moved), vtn.url, creds["ven"])

        def listed(kind: str) -> list[dict[str, Any]]:
            r = httpx.get(f"{vtn.url}/{kind}", headers=bearer(vtn.url, *creds["bl"]), timeout=10)
            r.raise_for_status()
            return list(r.json())

        vens, resources = (
            await asyncio.to_thread(listed, "vens"),
            await asyncio.to_thread(listed, "resources"),
        )

        # a VEN client may not hang a resource under another client's VEN
        bl = await asyncio.to_thread(bearer, vtn.url, *creds["bl"])
        ven_headers = await asyncio.to_thread(bearer, vtn.url, *creds["ven"])
        async with httpx.AsyncClient(timeout=10) as http:
            other = await http.post(
                f"{vtn.url}/vens", json={"venName": "other", "clientID": "someone-else"}, headers=bl
            )
            stolen = await http.post(
                f"{vtn.url}/resources",
                json={"resourceName": "x", "venID": other.json()["id"]},
                headers=ven_headers,
            )

    assert [r["ven"]["created"] for r in (first, second, third, fourth)] == [3, 0, 0, 0]
    assert [r["ven"]["updated"] for r in (first, second, third, fourth)] == [0, 0, 0, 1]
    assert all(r["ven"]["registration_errors"] == 0 for r in (first, second, third, fourth))
    (ven,) = vens
    assert (ven["venName"], ven["clientID"], ven["targets"]) == (
        "gridflex-agg",
        creds["ven"][0],
        ["station-1"],
    )
    assert ven["attributes"] == [{"type": "LOCATION", "values": [52.09, 5.12]}]
    assert {first["ven"]["ven_id"], third["ven"]["ven_id"], state["ven"]["ven_id"]} == {ven["id"]}
    by_name = {r["resourceName"]: r for r in resources}
    assert sorted(by_name) == ["site-a", "site-b"]
    assert {r["venID"] for r in resources} == {ven["id"]}
    assert state["ven"]["resource_ids"] == {n: r["id"] for n, r in by_name.items()}
    assert by_name["site-a"]["targets"] == ["station-2"]  # the fourth run's PUT, same id
    assert by_name["site-a"]["objectType"] == "RESOURCE"
    assert stolen.status_code == 400, stolen.text
    assert "venID" in stolen.json()["detail"]


async def test_library_event_reaches_the_ven_by_notification_and_a_wrong_token_is_refused(
    tmp_path: Path,
    bridge_controller: Callable[..., CloudController],
    bl_party: Callable[[str, dict[str, tuple[str, str]]], Party],
) -> None:
    cfg = bridge_config(tmp_path, callback_hosts=["127.0.0.1"], notify_backoff_s=0.05)
    ctl = bridge_controller(cfg)
    creds = clients_of(cfg)
    with serving_app(ctl) as base:
        vtn_url = f"{base}/openadr3"
        party = bl_party(vtn_url, creds)
        t0 = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
        party.ask(
            {
                "op": "event",
                "program_name": "utility-flex",
                "event_name": "flex-1",
                "target": "station-1",
                "intervals": [[t0.isoformat(), 60, 10.0]],
            }
        )
        ven_cfg = _ven_cfg(
            vtn_url,
            tmp_path,
            dr_api={"url": base, "operator_token_file": str(tmp_path / "op")},
            poll_interval_s=3600,
            subscribe=True,
            callback={"port": 0},
        )
        clock = RealClock()
        async with httpx.AsyncClient(timeout=10) as http:
            service = VenService(ven_cfg, *ven_clients(http, vtn_url, base, creds["ven"], clock), clock=clock)
            task = asyncio.create_task(service.run())
            try:
                await wait_for(lambda: _is(service.stats.subscriptions == 1), "the VEN's subscription")
                assert (service.bridge.stats.polls, service.bridge.stats.accepted) == (1, 1)
                assert service.callback is not None
                url = service.callback.url

                # wrong and missing tokens: 401, counted, no poll
                wrong = await http.post(
                    url, json={"objectType": "EVENT"}, headers={"Authorization": "Bearer forged"}
                )
                missing = await http.post(url, json={"objectType": "EVENT"})
                assert (wrong.status_code, missing.status_code) == (401, 401)
                assert service.callback.stats.refused == 2
                await asyncio.sleep(0.3)
                assert (service.bridge.stats.polls, service.stats.woken_rounds) == (1, 0)

                sent = time.monotonic()
                party.ask(
                    {
                        "op": "event",
                        "program_name": "utility-flex",
                        "event_name": "flex-2",
                        "target": "station-1",
                        "intervals": [[(t0 + timedelta(minutes=10)).isoformat(), 60, 12.0]],
                    }
                )
                await wait_for(
                    lambda: _is(len(ctl.dr.requests.all()) == 2), "the notified event's DR request"
                )
                latency_s = time.monotonic() - sent
                subs_while_running = await asyncio.to_thread(
                    lambda: httpx.get(
                        f"{vtn_url}/subscriptions", headers=bearer(vtn_url, *creds["bl"]), timeout=10
                    ).json()
                )
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        subs_after = await asyncio.to_thread(
            lambda: httpx.get(
                f"{vtn_url}/subscriptions", headers=bearer(vtn_url, *creds["bl"]), timeout=10
            ).json()
        )
        notifications = ctl.openadr.notifier.status() if ctl.openadr is not None else {}
        kw = sorted(r.request.p_kw for r in ctl.dr.requests.all())

    assert kw == [10.0, 12.0]
    assert service.callback.stats.accepted >= 1 and service.callback.stats.refused == 2
    assert service.stats.woken_rounds >= 1 and service.bridge.stats.polls >= 2
    assert service.stats.notification_to_submit_s is not None
    assert latency_s < 10.0  # the poll timer was an hour: only the notification can explain it
    (sub,) = subs_while_running
    (op,) = sub["objectOperations"]
    assert (sub["clientName"], sub["clientID"], op["objects"], op["callbackUrl"]) == (
        "gridflex-agg",
        creds["ven"][0],
        ["EVENT"],
        url,
    )
    assert op["operations"] == ["POST", "PUT", "DELETE"]
    assert subs_after == []
    assert notifications.get("sent", 0) >= 1
    print(
        f"\nnotification → DR request: {latency_s * 1000:.0f} ms from the BL's create "
        f"({service.stats.notification_to_submit_s * 1000:.0f} ms callback → submitted) vs poll interval 3600 s"
    )


async def _is(value: bool) -> bool:
    return value


@pytest.mark.slow
async def test_cli_run_subscribes_and_deletes_its_subscription_on_sigterm(tmp_path: Path) -> None:
    """`gridflex ven run FILE` (its own process, `subscribe: true`): one subscription while it runs, none after SIGTERM, exit 0."""
    cfg = config(tmp_path)
    (tmp_path / "op").write_text(OPERATOR, encoding="utf-8")
    with serving(cfg) as vtn:
        creds = clients_of(cfg)
        bl = await asyncio.to_thread(bearer, vtn.url, *creds["bl"])
        async with httpx.AsyncClient(timeout=10) as http:
            made = await http.post(f"{vtn.url}/programs", json={"programName": "utility-flex"}, headers=bl)
            assert made.status_code == 201, made.text
            ven_file = tmp_path / "ven.yaml"
            ven_file.write_text(
                json.dumps(
                    {
                        "vtn": {"url": vtn.url, "ven_name": "gridflex-agg"},
                        "dr_api": {"url": "http://127.0.0.1:9", "operator_token_file": "op"},
                        "programs": [{"program": "utility-flex", "dr_program": "peak"}],
                        "subscribe": True,
                        "callback": {"port": 0},
                    }
                ),
                encoding="utf-8",
            )
            env = {
                **os.environ,
                "GRIDFLEX_VEN_CLIENT_ID": creds["ven"][0],
                "GRIDFLEX_VEN_CLIENT_SECRET": creds["ven"][1],
            }
            proc = subprocess.Popen(
                [sys.executable, "-m", "gridflex", "ven", "run", str(ven_file)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            try:

                async def subscribed() -> bool:
                    subs = (await http.get(f"{vtn.url}/subscriptions", headers=bl)).json()
                    return len(subs) == 1 or proc.poll() is not None

                await wait_for(subscribed, "the CLI's subscription", timeout_s=120)
                assert proc.poll() is None, proc.communicate(timeout=5)[1][-3000:]
                during = (await http.get(f"{vtn.url}/subscriptions", headers=bl)).json()
                proc.send_signal(signal.SIGTERM)
                _, err = await asyncio.to_thread(proc.communicate, timeout=30)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(5)
            after = (await http.get(f"{vtn.url}/subscriptions", headers=bl)).json()
            vens = (await http.get(f"{vtn.url}/vens", headers=bl)).json()
    assert proc.returncode == 0, err[-3000:]
    (sub,) = during
    assert (sub["programID"], sub["clientName"]) == (made.json()["id"], "gridflex-agg")
    assert sub["objectOperations"][0]["callbackUrl"].startswith("http://127.0.0.1:")
    assert after == []
    assert [v["venName"] for v in vens] == ["gridflex-agg"]
