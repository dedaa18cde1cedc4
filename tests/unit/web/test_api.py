"""The dashboard's routes in-process (FastAPI's TestClient): pages, local assets, history, events, docs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from cloud_controller.api import create_app
from cloud_controller.config import CloudConfig, DashboardConfig
from cloud_controller.live.types import AssetRef, Plan, SiteRef
from cloud_controller.registry import Registry
from cloud_controller.service import CloudController
from cloud_controller.web.assets import PLOTLY_JS, PLOTLY_URL, accepts_gzip
from protocols.assets import BATTERY, METER, Points
from protocols.clock import SimClock
from protocols.messages import Event, Sample

NOW = datetime(2030, 1, 15, 18, 0, tzinfo=UTC)
REGISTRY = Registry(
    sites=(
        SiteRef("b1", 0, (AssetRef(METER, "meter"), AssetRef(BATTERY, "battery", 5.0, 10.0))),
        SiteRef("b2", 1, ()),
    )
)
PAGES = ["/", "/ui/grid", "/ui/sites", "/ui/sites/b1", "/ui/commands", "/ui/events", "/docs", "/redoc"]


def _controller(tmp: Path, **dashboard: object) -> CloudController:
    cfg = CloudConfig.model_validate(
        {
            "store": {"path": str(tmp / "s.sqlite")},
            "control": {"station_limit_kw": 30},
            "dashboard": dashboard,
        }
    )
    return CloudController(cfg, REGISTRY, clock=SimClock(NOW))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, CloudController]]:
    ctl = _controller(tmp_path)
    with TestClient(create_app(ctl)) as c:
        yield c, ctl
    ctl.store.close()


@pytest.mark.parametrize("path", PAGES)
def test_page_references_only_this_server(client: tuple[TestClient, CloudController], path: str) -> None:
    c, _ = client
    r = c.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    refs = re.findall(r"""(?:src|href)=["']([^"']+)""", r.text)
    assert refs and all(ref.startswith("/") for ref in refs), refs


def test_assets_are_served_locally_and_compressed(client: tuple[TestClient, CloudController]) -> None:
    c, _ = client
    for page in ("/", "/ui/grid", "/ui/sites/b1"):
        assert f'<script src="{PLOTLY_URL}"></script>' in c.get(page).text, page
    plotly = c.get(PLOTLY_URL, headers={"Accept-Encoding": "gzip"})
    assert plotly.status_code == 200 and plotly.headers["content-encoding"] == "gzip"
    assert plotly.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert plotly.headers["vary"] == "Accept-Encoding"
    wire = int(plotly.headers["content-length"])
    assert 300_000 < wire < 500_000  # what the browser downloads: under half of the 1 MB page budget
    assert plotly.content == PLOTLY_JS.read_bytes() and plotly.content.startswith(b"/**\n* plotly.js (basic")
    redoc = c.get("/static/vendor/redoc.standalone.js")
    assert redoc.status_code == 200 and b"cdn.redoc.ly" not in redoc.content
    for path in ("/static/docs/swagger-ui-bundle.js", "/static/docs/swagger-ui.css", "/static/dashboard.js"):
        assert c.get(path).status_code == 200, path


def test_plotly_bundle_is_revalidated_by_etag_and_sent_plain_without_gzip(
    client: tuple[TestClient, CloudController],
) -> None:
    c, _ = client
    first = c.get(PLOTLY_URL, headers={"Accept-Encoding": "gzip"})
    again = c.get(PLOTLY_URL, headers={"If-None-Match": first.headers["etag"], "Accept-Encoding": "gzip"})
    assert again.status_code == 304 and again.content == b""
    plain = c.get(PLOTLY_URL, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert int(plain.headers["content-length"]) == PLOTLY_JS.stat().st_size
    assert c.get("/static/vendor/plotly.min.js").status_code == 404  # the full 4.8 MB bundle is not served


@pytest.mark.parametrize(
    ("header", "gzip"),
    [
        ("gzip, deflate", True),
        ("deflate, gzip;q=0.5", True),
        ("*", True),
        ("gzip;q=0", False),
        ("identity", False),
        ("", False),
        ("gzip;q=bogus", False),
    ],
    ids=["plain", "weighted", "star", "refused", "identity", "none", "bad-weight"],
)
def test_accept_encoding_is_read_with_its_weights(header: str, gzip: bool) -> None:
    assert accepts_gzip(header) is gzip


def test_openapi_states_the_sign_convention_and_lists_the_dashboard_api(
    client: tuple[TestClient, CloudController],
) -> None:
    doc = client[0].get("/openapi.json").json()
    assert "-8 kW" in doc["info"]["description"] and "`p_limit_kw` = **+8**" in doc["info"]["description"]
    for path in (
        "/sites/{site}/history",
        "/grid/loading",
        "/events",
        "/fleet/status",
        "/fleet/overview",
        "/fleet/sites",
    ):
        assert path in doc["paths"], path
    assert not any(p.startswith("/ui") for p in doc["paths"])


def test_history_reads_the_store_window_and_points(client: tuple[TestClient, CloudController]) -> None:
    c, ctl = client
    keys = [Points.METER_P_KW, Points.BATTERY_SOC_PCT]
    ctl.store.write_samples(
        "b1",
        [
            Sample(
                seq=k,
                asset=keys[k % 2].asset,
                point=keys[k % 2].point,
                value=float(k),
                unit="kW",
                ts=NOW - timedelta(minutes=90 - 10 * k),
            )
            for k in range(10)
        ],
    )
    # the last hour up to the controller's clock, [from, to): not the sample at 18:00 itself
    default = c.get("/sites/b1/history").json()
    assert default["from"] == "2030-01-15T17:00:00Z" and default["to"] == "2030-01-15T18:00:00Z"
    assert {s["point"]: s["value"] for s in default["series"]} == {
        "bat1/soc_pct": [3.0, 5.0, 7.0],
        "meter/p_kw": [4.0, 6.0, 8.0],
    }
    one = c.get(
        "/sites/b1/history",
        params={"from": "2030-01-15T16:00:00Z", "to": "2030-01-15T17:00:00Z", "points": "meter/p_kw"},
    )
    assert [(s["point"], s["value"]) for s in one.json()["series"]] == [("meter/p_kw", [0.0, 2.0])]
    assert c.get("/sites/nope/history").status_code == 404
    assert "asset/point" in c.get("/sites/b1/history", params={"points": "meter"}).json()["detail"]
    assert (
        c.get(
            "/sites/b1/history", params={"from": "2030-01-15T18:00:00Z", "to": "2030-01-15T17:00:00Z"}
        ).status_code
        == 422
    )


def test_events_newest_first(client: tuple[TestClient, CloudController]) -> None:
    c, ctl = client
    ctl.store.write_event(
        Event(site="b1", ts=NOW, kind="fallback_entered", severity="warning", message="no cloud")
    )
    ctl.store.write_event(Event(site="b2", ts=NOW + timedelta(seconds=1), kind="fallback_left"))
    assert [e["kind"] for e in c.get("/events").json()] == ["fallback_left", "fallback_entered"]
    assert c.get("/events", params={"site": "b1"}).json()[0]["message"] == "no cloud"


def test_status_before_connecting_says_the_broker_is_lost(client: tuple[TestClient, CloudController]) -> None:
    st = client[0].get("/fleet/status").json()
    assert st["broker_connected"] is False and any("lost the MQTT broker" in b for b in st["banners"])
    assert st["data_as_of"] is None and st["plan_stale"] is False


def test_dashboard_disabled_keeps_its_api(tmp_path: Path) -> None:
    ctl = _controller(tmp_path, enabled=False)
    with TestClient(create_app(ctl)) as c:
        assert c.get("/").status_code == 404 and c.get("/fleet/status").status_code == 200
        assert c.get("/docs").status_code == 200 and c.get("/static/docs/swagger-ui.css").status_code == 200
    ctl.store.close()


def test_unknown_time_zone_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        DashboardConfig(timezone="Mars/Olympus")
    assert DashboardConfig(timezone="Europe/Berlin").timezone == "Europe/Berlin"


def _plan_at(at: datetime, planned_kw: list[float]) -> Plan:
    return Plan(
        at=at,
        period_s=900.0,
        commands=[],
        root_baseline_kw=[p + 5.0 for p in planned_kw],
        root_planned_kw=planned_kw,
        station_limit_kw=30.0,
        congestion=[],
        site_setpoints={"b1": {BATTERY: -2.0}},
        solve_ms=1.0,
        excluded_sites=[],
    )


def test_overview_counts_planned_overloads_today_only(client: tuple[TestClient, CloudController]) -> None:
    c, ctl = client
    # 16:00 .. 23:45 today, then 00:00 tomorrow: overloads at 16:15 and 00:00 (tomorrow: not counted)
    planned = [29.0] * 33
    planned[1] = planned[32] = 31.0
    ctl.last_plan = _plan_at(NOW - timedelta(hours=2), planned)
    ctl.snapshots["b1"].p_net_kw, ctl.snapshots["b1"].mode = 12.0, "online"
    o = c.get("/fleet/overview").json()
    assert o["overloaded_today"]["count"] == 1
    assert o["overloaded_today"]["intervals"][0]["start"] == "2030-01-15T16:15:00Z"
    assert o["fleet_kw"] == 12.0 and o["loading_now_pct"] == 40.0
    assert o["sites"] == {"total": 2, "online": 1, "offline": 0, "fallback": 0, "degraded": 0, "unknown": 1}
    row = c.get("/fleet/sites", params={"q": "b1"}).json()["rows"][0]
    assert row["setpoints_kw"] == {BATTERY: -2.0} and row["p_net_kw"] == 12.0


def test_a_plan_two_periods_old_is_stale(client: tuple[TestClient, CloudController]) -> None:
    c, ctl = client
    ctl.last_plan = _plan_at(NOW - timedelta(seconds=1801), [1.0])
    st = c.get("/fleet/status").json()
    assert st["plan_stale"] is True and any("plan is stale" in b for b in st["banners"])
    ctl.last_plan = _plan_at(NOW - timedelta(seconds=900), [1.0])
    assert c.get("/fleet/status").json()["plan_stale"] is False


def test_active_caps_last_ack_and_command_latency(client: tuple[TestClient, CloudController]) -> None:
    from protocols.messages import Ack, Command

    c, ctl = client
    ticks = iter([10.0, 10.25])  # host monotonic s: decided, acked
    ctl.tracker.host_clock = lambda: next(ticks)
    cap = Command(
        site="b1",
        ts=NOW,
        cmd_id="c1",
        asset="ev1",
        kind="p_limit_kw",
        value=4.2,
        valid_from=NOW - timedelta(minutes=1),
        valid_until=NOW + timedelta(minutes=14),
    )
    ctl.tracker.on_sent(cap)
    ctl.tracker.on_ack(Ack(site="b1", ts=NOW, cmd_id="c1", asset="ev1", status="clamped", reason="below min"))
    row = c.get("/fleet/sites", params={"q": "b1"}).json()["rows"][0]
    assert row["caps_kw"] == {"ev1": 4.2}
    assert row["last_ack"]["status"] == "clamped" and row["last_ack"]["reason"] == "below min"
    log = c.get("/commands/log").json()
    assert log["counts"]["clamped"] == 1 and log["ack_latency_ms"]["p50"] == 250.0
    assert log["recent"][0] | {"ts": None} == log["recent"][0] | {
        "ts": None,
        "cmd_id": "c1",
        "status": "clamped",
        "reason": "below min",
        "latency_ms": 250.0,
    }
    hist = c.get(
        "/sites/b1/history", params={"from": "2030-01-15T17:00:00Z", "to": "2030-01-15T18:01:00Z"}
    ).json()
    assert [x["cmd_id"] for x in hist["commands"]] == ["c1"]
