"""Secondary-substation meters of a simulated region: served over Modbus TCP, driven by the grid truth.

One `SubstationMeter` (simulators.devices) per MV/LV station of the region, each behind its
own Modbus TCP server with SunSpec models 1 + 203 (template `sunspec-substation-meter`),
and a site YAML (`sites/sub-<station>.yaml`) for an edge agent at the substation, which
reads and publishes it like any site. Every `update_s` of simulated time the grid truth's
AC power flow over what the buildings draw *now* (plus the truth's background households
in the interval of the clock's now) sets each meter (P, Q, per-phase voltage
and current, 50 Hz) and adds the energy of the time since the previous update.

This lives in the composition root because the simulators may not import the grid model:
the meters are equipment, the power flow that drives them is the world around them.
The power flow (~50 ms for the 319-household region) runs in a worker thread so the
physics and the agents on the same event loop keep their pace.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType

import yaml

from gridflex.loop.grid_truth import GridTruth, TruthInterval
from gridflex.ops.runner import cancel_until_done
from protocols.assets import substation_site_id
from protocols.clock import Clock
from simulators.building import Building
from simulators.devices import SubstationMeter
from simulators.modbus import ModbusDeviceServer
from simulators.modbus.sunspec import substation_meter_map
from simulators.siteconfig import substation_site_config

__all__ = [
    "SUBSTATIONS_FILE",
    "SubstationSite",
    "Substations",
    "read_substation_sites",
    "region_truth",
]

log = logging.getLogger(__name__)

#: Written beside manifest.json: the substation sites (the manifest lists buildings only,
#: and the controller's registry places every manifest site on a household); a registry
#: loaded from that manifest.json reads them as grid meters (cloud_controller.registry's
#: SUBSTATIONS_FILE, the same name: tests/unit/cloud/test_registry_grid_meters.py pins it).
SUBSTATIONS_FILE = "substations.json"
#: Wall seconds the driving task gets to stop when the block ends.
STOP_BOUND_S = 10.0


@dataclass(frozen=True)
class SubstationSite:
    """One served substation meter: its site id, station, Modbus endpoint and site YAML."""

    site: str
    station: str
    host: str
    port: int
    unit_id: int
    config: Path


def read_substation_sites(out_dir: Path) -> list[SubstationSite]:
    """The substation sites a run wrote to `out_dir/substations.json`."""
    doc = json.loads((out_dir / SUBSTATIONS_FILE).read_text())
    return [SubstationSite(**{**s, "config": Path(s["config"])}) for s in doc["substations"]]


def region_truth(site_ids: Sequence[str], *, seed: int = 0) -> GridTruth:
    """The default region's grid truth, `site_ids` on the households the controller gives them.

    `gridflex cloud` places a manifest's sites with seed 0 (`registry_from_manifest`); the
    same placement here puts each building on the bus the controller believes it is on.
    Slow (seconds: pandapower's import and the region's cut): call it in a thread.
    """
    from cloud_controller import build_schutterwald_region
    from gridflex.loop.scenario import place_sites

    region = build_schutterwald_region()
    return GridTruth(region, place_sites(region, list(site_ids), seed=seed))


class Substations:
    """`async with Substations(truth, out_dir=...) as subs:` servers up and YAMLs written; `run` drives them."""

    def __init__(
        self,
        truth: GridTruth,
        *,
        out_dir: Path,
        broker_host: str = "127.0.0.1",
        broker_port: int = 1883,
        host: str = "127.0.0.1",
    ) -> None:
        self.truth = truth
        self.out_dir = Path(out_dir).resolve()
        self.broker_host = broker_host
        self.broker_port = broker_port
        self.meters = {station: SubstationMeter() for station in truth.stations}
        self.servers = {
            station: ModbusDeviceServer(
                f"{substation_site_id(station)}/meter",
                substation_meter_map(meter, serial=substation_site_id(station)),
                unit_id=1,
                host=host,
            )
            for station, meter in self.meters.items()
        }
        self.sites: list[SubstationSite] = []
        self.last: TruthInterval | None = None
        self.failures = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Substations:
        try:
            await asyncio.gather(*(s.start() for s in self.servers.values()))
            self.sites = self._write_files()
        except BaseException:
            await self._stop()
            raise
        log.info("substations: %d meters served (%s)", len(self.sites), ", ".join(s.site for s in self.sites))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stop()

    async def _stop(self) -> None:
        if self._task is not None:
            await cancel_until_done(self._task, bound_s=STOP_BOUND_S)
        await asyncio.gather(*(s.stop() for s in self.servers.values()), return_exceptions=True)

    def _write_files(self) -> list[SubstationSite]:
        sites_dir, state_dir = self.out_dir / "sites", self.out_dir / "state"
        sites_dir.mkdir(parents=True, exist_ok=True)
        state_dir.mkdir(parents=True, exist_ok=True)
        sites = []
        for station, server in self.servers.items():
            site = substation_site_id(station)
            doc = substation_site_config(
                site,
                host=server.host,
                port=server.port,
                unit_id=server.unit_id,
                broker_host=self.broker_host,
                broker_port=self.broker_port,
                state_dir=state_dir,
            )
            path = sites_dir / f"{site}.yaml"
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
            sites.append(SubstationSite(site, station, server.host, server.port, server.unit_id, path))
        listing = {"substations": [{**asdict(s), "config": str(s.config)} for s in sites]}
        (self.out_dir / SUBSTATIONS_FILE).write_text(json.dumps(listing, indent=2))
        return sites

    def apply(self, interval: TruthInterval, dt_s: float) -> None:
        """Set every meter from one power flow, its P held over the `dt_s` that ended now, and refresh."""
        for station, meter in self.meters.items():
            flow = interval.station_flow[station]
            meter.step(
                dt_s,
                p_kw=flow.p_kw,
                q_kvar=flow.q_kvar,
                v_ln_v=(flow.v_ln_v,) * 3,
                i_a=(flow.i_a,) * 3,
                f_hz=flow.f_hz,
            )
            self.servers[station].refresh()
        self.last = interval

    async def update(
        self, p_kw_by_site: Mapping[str, float], dt_s: float, *, at: datetime | None = None
    ) -> TruthInterval:
        """Power flow over the buildings' powers now (in a thread), then set the meters.

        `at`: the time of the powers (required when the truth has a background load).
        """
        interval = await asyncio.to_thread(functools.partial(self.truth.evaluate, dict(p_kw_by_site), at=at))
        self.apply(interval, dt_s)
        return interval

    def start(self, clock: Clock, buildings: Mapping[str, Building], *, update_s: float) -> None:
        """Drive the meters from `buildings`' grid power in the background (`run`) until the block ends."""
        if self._task is not None:
            raise RuntimeError("substations already driven")
        self._task = asyncio.create_task(
            self.run(clock, lambda: {site: b.p_net_kw for site, b in buildings.items()}, update_s=update_s),
            name="substations",
        )

    def failed(self) -> BaseException | None:
        """The driving task's error, if it ended with one (a loop must not hide it)."""
        task = self._task
        if task is None or not task.done() or task.cancelled():
            return None
        return task.exception()

    async def run(
        self, clock: Clock, p_kw_by_site: Callable[[], Mapping[str, float]], *, update_s: float
    ) -> None:
        """Update the meters now and then every `update_s` of `clock` time, until cancelled.

        A power flow that fails (does not converge) leaves the meters at their last values and
        is counted in `failures`; the next update tries again and books the energy of both.
        """
        if update_s <= 0:
            raise ValueError("update_s must be > 0")
        last = clock.monotonic()
        pending_s = 0.0  # time since the last update that set the meters
        while True:
            try:
                await self.update(p_kw_by_site(), pending_s, at=clock.now())
                pending_s = 0.0
            except Exception as exc:  # pandapower's LoadflowNotConverged and kin: hold the values
                self.failures += 1
                log.warning("substations: power flow failed (%d so far): %s", self.failures, exc)
            await clock.sleep(update_s)
            t = clock.monotonic()
            pending_s, last = pending_s + t - last, t
