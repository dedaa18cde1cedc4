"""The README's "Using it" path for real: `gridflex sim --sites 3`, an agent per building, the cloud
with `examples/cloud.yaml`, a real Mosquitto; then the same fleet against a deliberately wrong registry.

The example config is taken as written except what a shared test machine needs: the
broker's port (a free one), the store under tmp, `api.port` 0, and a 60 s period so the
first plan comes after 6 s instead of 60 s (the control maths does not depend on it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gridflex.ops.broker import MosquittoBroker
from tests.integration.cli.procs import NOISE, Proc, start

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1200)]

EXAMPLES = Path(__file__).parents[3] / "examples"
SITES = ("b001", "b002", "b003")
#: What examples/registry.yaml commands each period: b001's EV charger, b002's battery and PV.
EXPECTED_PER_PLAN = {("b001", "ev1"), ("b002", "bat1"), ("b002", "pv1")}


class Fleet:
    """Mosquitto, `gridflex sim --sites 3` and one `gridflex edge` per building."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.broker = MosquittoBroker().start()
        self.procs: list[Proc] = []
        try:
            sim = start(
                tmp, "sim", "sim", "--sites", "3", "--out", str(tmp / "sim"), "--broker-port", str(self.port)
            )
            self.procs.append(sim)
            sim.wait_for(r"buildings up in", 180)
            for site in SITES:
                self.procs.append(
                    start(tmp, site, "edge", "--config", str(tmp / "sim" / "sites" / f"{site}.yaml"))
                )
        except BaseException:
            self.close()
            raise

    @property
    def port(self) -> int:
        return self.broker.port

    def close(self) -> None:
        for p in reversed(self.procs):
            p.stop()
        self.broker.close()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    f = Fleet(tmp_path_factory.mktemp("readme"))
    try:
        yield f
    finally:
        f.close()


def _cloud(fleet: Fleet, name: str, registry: Path) -> tuple[Proc, httpx.Client]:
    doc = yaml.safe_load((EXAMPLES / "cloud.yaml").read_text())
    doc["broker"]["port"] = fleet.port
    doc["store"]["path"] = str(fleet.tmp / name / "cloud.sqlite")
    doc["registry"] = str(registry)
    doc["control"]["period_s"] = 60
    doc["api"]["port"] = 0
    cfg = fleet.tmp / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    proc = start(fleet.tmp, name, "cloud", "--config", str(cfg))
    port = int(proc.wait_for(r"API on http://127\.0\.0\.1:(\d+)/", 180).group(1))
    return proc, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)


def _until(client: httpx.Client, path: str, done: Any, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    body: Any = None
    while time.monotonic() < deadline:
        body = client.get(path).json()
        if done(body):
            return body
        time.sleep(0.5)
    raise AssertionError(f"{path} never got there: {body}")


def test_readme_path_commands_are_all_accepted(fleet: Fleet) -> None:
    proc, api = _cloud(fleet, "cloud-ok", EXAMPLES / "registry.yaml")
    try:
        # one whole plan answered: every command of the first plan acked
        def first_plan_acked(body: dict[str, Any]) -> bool:
            recent = body["recent"]
            return len(recent) >= len(EXPECTED_PER_PLAN) and all(
                r["status"] is not None for r in recent[: len(EXPECTED_PER_PLAN)]
            )

        body = _until(api, "/commands", first_plan_acked, 600)  # the planner is built first
        recent = body["recent"]
        assert {(r["site"], r["asset"]) for r in recent} <= EXPECTED_PER_PLAN | {("b001", "ev1")}
        assert {(r["site"], r["asset"]) for r in recent} >= EXPECTED_PER_PLAN
        rejected = [r for r in recent if r["status"] in ("rejected", "failed")]
        assert rejected == [], rejected
        assert not any("unknown asset" in (r["reason"] or "") for r in recent)
        # the registry matches what the buildings report
        reg = api.get("/registry").json()
        assert reg["registered_sites"] == list(SITES)
        assert reg["unregistered_sites"] == []
        assert reg["mismatched_sites"] == {}
        for site in SITES:
            assert api.get(f"/sites/{site}").json()["registry_mismatch"] == {
                "missing_assets": [],
                "unregistered_points": [],
            }
    finally:
        assert proc.stop() == 0
    out = proc.text()
    assert "registry mismatch" not in out
    assert not [n for n in NOISE if n in out], out[-3000:]
    assert "Traceback" not in out


def test_wrong_registry_is_flagged_and_the_missing_asset_never_commanded(fleet: Fleet) -> None:
    wrong = fleet.tmp / "wrong-registry.yaml"
    # b001 really has meter, ev1 and zone1: register a battery it lacks and leave zone1 out;
    # b002 and b003 are not registered at all
    wrong.write_text(
        yaml.safe_dump(
            {
                "sites": [
                    {
                        "site": "b001",
                        "region_site": 12,
                        "assets": [
                            {"asset": "meter", "kind": "meter"},
                            {"asset": "ev1", "kind": "ev", "p_nominal_kw": 11.0},
                            {"asset": "bat1", "kind": "battery", "p_nominal_kw": 5.0, "capacity_kwh": 10.0},
                        ],
                    }
                ]
            }
        )
    )
    proc, api = _cloud(fleet, "cloud-wrong", wrong)
    try:
        site = _until(api, "/sites/b001", lambda b: b["registry_mismatch"]["missing_assets"] == ["bat1"], 400)
        unregistered = site["registry_mismatch"]["unregistered_points"]
        assert unregistered and all(p.startswith("zone1/") for p in unregistered), unregistered
        reg = _until(api, "/registry", lambda b: len(b["unregistered_sites"]) == 2, 60)
        assert [s["site"] for s in reg["unregistered_sites"]] == ["b002", "b003"]
        assert set(reg["mismatched_sites"]) == {"b001"}
        # plans go on for what exists: after the flag (plans inside the grace still commanded the
        # battery), the next plan commands the EV charger and never the battery
        before = {r["cmd_id"] for r in api.get("/commands", params={"limit": 5000}).json()["recent"]}

        def new_ev_command(b: dict[str, Any]) -> bool:
            return any(r["cmd_id"] not in before and r["asset"] == "ev1" for r in b["recent"])

        body = _until(api, "/commands?limit=5000", new_ev_command, 300)
        after = [r for r in body["recent"] if r["cmd_id"] not in before]
        assert ("b001", "bat1") not in {(r["site"], r["asset"]) for r in after}, after
        assert not any("unknown asset" in (r["reason"] or "") for r in after)
        assert api.get("/schedule").json()["sites"]["b001"].get("bat1") is None
        events = [
            e for e in api.get("/events", params={"site": "b001"}).json() if e["kind"] == "registry_mismatch"
        ]
        # one warning event per finding, never repeated: the missing battery, the unregistered zone
        assert all(e["severity"] == "warning" for e in events), events
        assert sum("bat1" in e["message"] for e in events) == 1, events
        assert sum("zone1" in e["message"] for e in events) == 1, events
        assert not any("meter" in e["message"] or "ev1" in e["message"] for e in events), events
    finally:
        assert proc.stop() == 0
    log = proc.text()
    assert 1 <= log.count("registry mismatch at b001") <= 2
    assert log.count("site 'b002' is not in the registry") == 1
