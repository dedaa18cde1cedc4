"""History from a real InfluxDB 1.x (Debian's `influxdb`): written by the sink's v1 API, read by InfluxQL.

The same samples go to the controller's SQLite store and, through `InfluxSink(api="v1")`,
to an `influxd` started on loopback; `/sites/{id}/history` configured to read InfluxDB
must answer exactly what the SQLite store answers, for several windows and point lists.
`make test` installs `influxdb` with apt-get.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from cloud_controller.api import create_app
from cloud_controller.config import CloudConfig
from cloud_controller.live.types import AssetRef, SiteRef
from cloud_controller.registry import Registry
from cloud_controller.service import CloudController
from cloud_controller.store.influx_history import InfluxHistory
from gridflex.ops.broker import free_port
from protocols.assets import BATTERY, METER, PointKey, Points
from protocols.clock import SimClock
from protocols.messages import Sample

pytestmark = pytest.mark.integration

INFLUXD = shutil.which("influxd") or "/usr/bin/influxd"
NOW = datetime.now(UTC).replace(microsecond=0)
REGISTRY = Registry(
    sites=(
        SiteRef("b1", 0, (AssetRef(METER, "meter"), AssetRef(BATTERY, "battery", 5.0, 10.0))),
        SiteRef("b2", 1, (AssetRef(METER, "meter"),)),
    )
)


@pytest.fixture
def influxd(tmp_path: Path) -> Iterator[str]:
    """An InfluxDB 1.x on two free loopback ports, its files in tmp_path; stopped by its PID."""
    if not Path(INFLUXD).exists():
        pytest.fail("influxd is not installed (make test installs `influxdb` with apt-get)")
    http_port, rpc_port = free_port(), free_port()
    root = tmp_path / "influx"
    conf = tmp_path / "influxdb.conf"
    conf.write_text(
        f'reporting-disabled = true\nbind-address = "127.0.0.1:{rpc_port}"\n'
        f'[meta]\n  dir = "{root}/meta"\n'
        f'[data]\n  dir = "{root}/data"\n  wal-dir = "{root}/wal"\n  query-log-enabled = false\n'
        f'[http]\n  enabled = true\n  bind-address = "127.0.0.1:{http_port}"\n  log-enabled = false\n'
        "[monitor]\n  store-enabled = false\n[subscriber]\n  enabled = false\n"
        "[continuous_queries]\n  enabled = false\n"
    )
    proc = subprocess.Popen(
        [INFLUXD, "-config", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/ping", timeout=1).status_code == 204:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"influxd did not answer on {url} (exit {proc.poll()})")
            time.sleep(0.1)
        r = httpx.post(f"{url}/query", data={"q": "CREATE DATABASE gf"}, timeout=10)
        assert r.status_code == 200 and "error" not in r.text, r.text
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _samples() -> dict[str, list[Sample]]:
    """Two sites: b1 with two points (one bad and one null sample among them), b2 with one."""
    t0 = NOW - timedelta(hours=3)
    b1 = []
    for k in range(120):
        key = (Points.METER_P_KW, Points.BATTERY_SOC_PCT)[k % 2]
        bad = k % 17 == 5
        b1.append(
            Sample(
                seq=k,
                asset=key.asset,
                point=key.point,
                value=None if k % 23 == 7 else round(0.5 * k - 20.0, 3),
                unit="kW" if key.point == "p_kw" else "%",
                ts=t0 + timedelta(seconds=90 * k, milliseconds=k),  # ms precision kept
                quality="bad" if bad or k % 23 == 7 else "good",
            )
        )
    b2 = [
        Sample(seq=k, asset=METER, point="p_kw", value=100.0 + k, unit="kW", ts=t0 + timedelta(minutes=k))
        for k in range(30)
    ]
    return {"b1": b1, "b2": b2}


async def test_history_from_influxdb_equals_the_sqlite_store_and_is_served_by_the_api(
    influxd: str, tmp_path: Path
) -> None:
    cfg = CloudConfig.model_validate(
        {
            "store": {
                "kind": "influxdb",
                "api": "v1",
                "database": "gf",
                "url": influxd,
                "history": "influxdb",
                "path": str(tmp_path / "s.sqlite"),
            },
            "control": {"dispatch": False},
        }
    )
    ctl = CloudController(cfg, REGISTRY, clock=SimClock(NOW))
    sink = ctl.ingest.sink
    assert sink is not None and sink.api == "v1" and isinstance(ctl.history, InfluxHistory)
    by_site = _samples()
    n_lines = 0
    for site, samples in by_site.items():
        ctl.store.write_samples(site, samples)
        sink.enqueue(site, samples)
        n_lines += sum(s.value is not None for s in samples)
    task = asyncio.create_task(sink.run())
    try:
        async with asyncio.timeout(30):
            while sink.stats.lines_written < n_lines:
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert sink.stats.write_errors == 0 and sink.stats.lines_written == n_lines

    windows = [
        (NOW - timedelta(hours=4), NOW),
        (NOW - timedelta(hours=2, minutes=13), NOW - timedelta(hours=1, minutes=2)),
        (NOW - timedelta(hours=3), NOW - timedelta(hours=3) + timedelta(seconds=90 * 10, milliseconds=10)),
    ]
    point_sets: list[list[PointKey] | None] = [
        None,
        [Points.METER_P_KW],
        [Points.BATTERY_SOC_PCT, PointKey("x", "y")],
    ]
    compared = 0
    for site in by_site:
        for start, end in windows:
            for points in point_sets:
                want = ctl.store.read_history(site, start, end, points)
                got = ctl.history.read_history(site, start, end, points)
                assert got == want, (site, start, end, points)
                compared += sum(len(v) for v in want.values())
    assert compared > 150  # the windows held samples, not only empty answers

    with TestClient(create_app(ctl)) as client:
        r = client.get(
            "/sites/b1/history",
            params={"from": (NOW - timedelta(hours=4)).isoformat(), "to": NOW.isoformat()},
        )
        assert r.status_code == 200, r.text
        series = {s["point"]: s["value"] for s in r.json()["series"]}
    want_all = ctl.store.read_history("b1", NOW - timedelta(hours=4), NOW)
    assert series == {str(k): [v for _, v in rows] for k, rows in want_all.items()}
    assert len(series["meter/p_kw"]) > 40 and len(series["bat1/soc_pct"]) > 40
    ctl.store.close()
    ctl.history.close()
