"""GridFlex's VTN over real HTTP (the controller's app under uvicorn): auth, roles, validation, restart."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

from tests.integration.openadr.vtn_server import bearer, clients_of, config, serving

pytestmark = pytest.mark.integration

EVENT = {
    "eventName": "cap",
    "intervals": [
        {
            "id": 0,
            "intervalPeriod": {"start": "2026-12-03T16:00:00Z", "duration": "PT15M"},
            "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [40.0]}],
        }
    ],
}


def test_token_discovery_and_refusals(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    with serving(cfg) as vtn:
        creds = clients_of(cfg)
        assert cfg.openadr.credentials_file is not None
        assert cfg.openadr.credentials_file.stat().st_mode & 0o777 == 0o600  # generated, owner-only
        assert httpx.get(f"{vtn.url}/auth/server", timeout=30).json() == {"tokenURL": f"{vtn.url}/token"}
        wrong = base64.b64encode(f"{creds['bl'][0]}:not-the-secret".encode()).decode()
        r = httpx.post(
            f"{vtn.url}/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {wrong}"},
            timeout=30,
        )
        assert (r.status_code, r.json()["error"]) == (401, "invalid_client")
        r = httpx.post(f"{vtn.url}/token", data={"grant_type": "password"}, timeout=30)
        assert (r.status_code, r.json()["error"]) == (400, "unsupported_grant_type")
        assert httpx.get(f"{vtn.url}/programs", timeout=30).status_code == 401
        r = httpx.get(f"{vtn.url}/programs", headers={"Authorization": "Bearer bl.1.forged"}, timeout=30)
        assert (r.status_code, r.json()["error"]) == (401, "invalid_token")


def test_validation_names_the_field_and_roles_hold(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    with serving(cfg) as vtn:
        creds = clients_of(cfg)
        bl, ven = bearer(vtn.url, *creds["bl"]), bearer(vtn.url, *creds["ven"])
        r = httpx.post(f"{vtn.url}/programs", json={"programNmae": "x"}, headers=bl, timeout=30)
        assert r.status_code == 400
        fields = {e["field"] for e in r.json()["errors"]}
        assert fields == {"programName", "programNmae"}  # missing, and the misspelt key refused by name
        r = httpx.post(f"{vtn.url}/events", json={**EVENT, "programID": "nope"}, headers=bl, timeout=30)
        assert r.status_code == 400 and "programID" in r.json()["detail"]
        prog = httpx.post(f"{vtn.url}/programs", json={"programName": "p1"}, headers=bl, timeout=30).json()
        dup = httpx.post(f"{vtn.url}/programs", json={"programName": "p1"}, headers=bl, timeout=30)
        assert dup.status_code == 409
        bad = {**EVENT, "programID": prog["id"], "priority": -1}
        r = httpx.post(f"{vtn.url}/events", json=bad, headers=bl, timeout=30)
        assert r.status_code == 400 and r.json()["errors"][0]["field"] == "priority"
        assert (
            httpx.post(
                f"{vtn.url}/events", json={**EVENT, "programID": prog["id"]}, headers=ven, timeout=30
            ).status_code
            == 403
        )
        ev = httpx.post(
            f"{vtn.url}/events", json={**EVENT, "programID": prog["id"]}, headers=bl, timeout=30
        ).json()
        assert ev["objectType"] == "EVENT" and ev["intervals"][0]["intervalPeriod"]["duration"] == "PT15M"
        report = {
            "eventID": ev["id"],
            "clientName": "ven-1",
            "resources": [
                {
                    "resourceName": "r",
                    "intervals": [{"id": 0, "payloads": [{"type": "USAGE", "values": [1.5]}]}],
                }
            ],
        }
        assert httpx.post(f"{vtn.url}/reports", json=report, headers=bl, timeout=30).status_code == 403
        posted = httpx.post(
            f"{vtn.url}/reports", json={**report, "clientID": "someone-else"}, headers=ven, timeout=30
        )
        assert posted.status_code == 201 and posted.json()["clientID"] == creds["ven"][0]  # never the body's
        put = httpx.put(
            f"{vtn.url}/programs/{prog['id']}", json={"programName": "p1-renamed"}, headers=bl, timeout=30
        )
        assert put.status_code == 200
        assert put.json()["createdDateTime"] == prog["createdDateTime"] and put.json()["id"] == prog["id"]
        r = httpx.get(
            f"{vtn.url}/events", params={"programID": prog["id"], "limit": 51}, headers=ven, timeout=30
        )
        assert r.status_code == 400 and "limit" in r.json()["detail"]
        assert httpx.get(f"{vtn.url}/status", headers=ven, timeout=30).status_code == 403
        status = httpx.get(f"{vtn.url}/status", headers=bl, timeout=30).json()
        # writes: programme, event, report, PUT; refused: the two 400s on fields, unknown programID, 409,
        # VEN event, BL report, limit 51
        assert (status["tokens_issued"], status["writes"], status["refusals"]) == (2, 4, 7)


def test_a_restart_keeps_programs_events_reports_and_tokens(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    with serving(cfg) as vtn:
        creds = clients_of(cfg)
        bl = bearer(vtn.url, *creds["bl"])
        prog = httpx.post(f"{vtn.url}/programs", json={"programName": "kept"}, headers=bl, timeout=30).json()
        ev = httpx.post(
            f"{vtn.url}/events", json={**EVENT, "programID": prog["id"]}, headers=bl, timeout=30
        ).json()
    with serving(cfg) as vtn2:  # same files: a restarted controller
        assert clients_of(cfg) == creds  # the generated credentials are read back, not regenerated
        got = httpx.get(f"{vtn2.url}/events", params={"programID": prog["id"]}, headers=bl, timeout=30)
        assert got.status_code == 200 and got.json() == [ev]  # the old token still works
        assert (
            httpx.delete(f"{vtn2.url}/programs/{prog['id']}", headers=bl, timeout=30).json()["id"]
            == prog["id"]
        )
        assert httpx.get(f"{vtn2.url}/programs", headers=bl, timeout=30).json() == []
