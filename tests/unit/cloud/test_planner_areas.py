"""`dispatch.areas` in cloud.yaml: validated, built by the service set-up, the planner's areas solved there and stopped by `close`."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud_controller.config import CloudConfig, load_cloud_config
from cloud_controller.dispatch import DaskAreas, DecomposedEngine, ProcessAreas
from cloud_controller.grid.region import Region
from cloud_controller.live.planner import build_planner
from cloud_controller.live.types import SiteSnapshot
from cloud_controller.service_setup import _area_execution
from protocols.errors import ConfigError
from tests.unit.cloud.test_forecast_planner import NOW, PERIOD_S, _History, _sites, region  # noqa: F401


def _config(tmp_path: Path, text: str) -> CloudConfig:
    path = tmp_path / "cloud.yaml"
    path.write_text(text)
    return load_cloud_config(path)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("dispatch: {areas: {execution: processes}}\n", "needs control.solve_by_area: true"),
        ("dispatch: {areas: {execution: threads}}\n", "'serial', 'processes' or 'dask'"),
        (
            "dispatch: {areas: {execution: processes, workers: 0}}\n",
            "workers must be >= 1 for worker processes",
        ),
        (
            "dispatch: {areas: {execution: dask, workers: 0}}\n",
            "workers must be >= 1 for a local Dask cluster",
        ),
        (
            "dispatch: {areas: {execution: processes, scheduler: 'tcp://h:8786'}}\n",
            "scheduler is for execution: dask",
        ),
        ("dispatch: {areas: {execution: dask, scheduler: 'h:8786'}}\n", "must look like tcp://host:port"),
    ],
)
def test_bad_area_execution_is_refused_with_the_key_and_reason(
    tmp_path: Path, text: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as err:
        _config(tmp_path, "control: {solve_by_area: true}\n" + text if "needs" not in reason else text)
    assert reason in str(err.value) and "cloud.yaml" in str(err.value)


def test_the_configured_execution_is_built_only_by_area(tmp_path: Path) -> None:
    by_area = "control: {solve_by_area: true}\n"
    assert _area_execution(_config(tmp_path, by_area)) is None  # serial: the engine's own threads
    procs = _area_execution(
        _config(tmp_path, by_area + "dispatch: {areas: {execution: processes, workers: 3}}\n")
    )
    assert isinstance(procs, ProcessAreas) and procs.workers == 3
    remote = _area_execution(
        _config(
            tmp_path,
            by_area + "dispatch: {areas: {execution: dask, workers: 0, scheduler: 'tcp://10.0.0.5:8786'}}\n",
        )
    )
    assert isinstance(remote, DaskAreas) and remote.scheduler == "tcp://10.0.0.5:8786" and remote.workers == 0


def test_the_planner_solves_its_areas_on_dask_and_stops_them_on_close(
    region: Region,  # noqa: F811
    dask_scheduler: str,
) -> None:
    sites = _sites(12)  # over the three stations
    snaps = {s.site: SiteSnapshot(site=s.site, mode="online", points={"bat1/soc_pct": 30.0}) for s in sites}
    common = {"period_s": PERIOD_S, "horizon_steps": 48, "margin_s": 120, "station_limit_kw": None}
    here = build_planner(region, sites, by_area=True, **common)  # type: ignore[arg-type]
    dask = DaskAreas(2, dask_scheduler)
    there = build_planner(region, sites, by_area=True, area_execution=dask, **common)  # type: ignore[arg-type]
    here.plan(NOW, snaps, _History())
    there.plan(NOW, snaps, _History())
    assert isinstance(there.engine, DecomposedEngine) and there.engine.execution is dask
    assert there.engine.last_by_area and there.engine.n_areas == 3
    assert here.last_schedule is not None and there.last_schedule is not None
    assert there.last_schedule.objective == pytest.approx(here.last_schedule.objective, rel=1e-9)
    there.close()
    here.close()
    with pytest.raises(RuntimeError, match="not started"):
        dask.lazy_rows()


class _ClosingPlanner:
    """A planner that only records being closed (the service never plans here: dispatch off)."""

    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


async def test_the_service_closes_its_planner_on_shutdown(tmp_path: Path) -> None:
    import asyncio
    from datetime import UTC, datetime

    from cloud_controller.registry import Registry
    from cloud_controller.service import CloudController
    from protocols.clock import SimClock

    cfg = CloudConfig.model_validate(
        {
            "store": {"path": str(tmp_path / "s.sqlite")},
            "api": {"enabled": False},
            "control": {"dispatch": False},
        }
    )
    planner = _ClosingPlanner()
    clock = SimClock(datetime(2030, 1, 1, tzinfo=UTC))
    ctl = CloudController(cfg, Registry(sites=()), clock=clock, planner=planner)  # type: ignore[arg-type]
    task = asyncio.create_task(ctl.run())
    await asyncio.sleep(0.2)  # the MQTT session retries a broker that is not there
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10.0)
    assert planner.closed == 1
