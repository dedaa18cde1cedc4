"""TestBed: N simulated buildings with their Modbus and BACnet servers, in-process, on loopback.

    async with TestBed(TestBedConfig(n_sites=3), clock, out_dir) as bed:
        bed.step(1.0)                       # or: await bed.run() until cancelled
        bed.fault("b001", "pv", "silent")

On enter it builds the seeded fleet, starts one Modbus TCP server per device (the OS
picks free loopback ports) and, if `bacnet`, one BAC0 BMS device per building on its
own UDP port; then it writes `out_dir/manifest.json` and `out_dir/sites/<site>.yaml`.
On exit everything is stopped and the ports are free again.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from protocols.assets import BATTERY, EV, HP, METER, PV, ZONE, Role
from protocols.clock import Clock
from protocols.testbed import AssetInfo, BacnetEndpoint, Manifest, ModbusEndpoint, SiteManifest
from simulators.bacnet import BmsDevice
from simulators.building import Building, build
from simulators.fleet import AssetMix, SiteSpec, draw_specs, fleet_profiles
from simulators.modbus import (
    FaultKind,
    ModbusDeviceServer,
    RegisterMap,
    battery_map,
    ev_map,
    hp_map,
    meter_map,
    pv_map,
)
from simulators.siteconfig import site_config

__all__ = ["BACNET_DEVICE_ID_BASE", "TestBed", "TestBedConfig"]

log = logging.getLogger(__name__)

BACNET_DEVICE_ID_BASE = 100_000  # b001 -> 100001


@dataclass(frozen=True)
class TestBedConfig:
    """What to simulate. `step_s` is the physics step in simulated seconds for `run()`."""

    __test__ = False  # not a pytest class

    n_sites: int
    seed: int = 1
    start: datetime = datetime(2030, 1, 15, tzinfo=UTC)
    step_s: float = 1.0
    broker_host: str = "127.0.0.1"
    broker_port: int = 1883
    bacnet: bool = True
    asset_mix: AssetMix = field(default_factory=AssetMix)
    host: str = "127.0.0.1"
    profile_days: float = 14.0
    #: Explicit buildings (site ids, assets, consumption) instead of the seeded mix; len == n_sites.
    specs: tuple[SiteSpec, ...] = ()
    #: the agents' Modbus request timeout in the site configs written (`devices[].timeout_s`)
    modbus_timeout_s: float = 1.0

    def __post_init__(self) -> None:
        if self.specs and len(self.specs) != self.n_sites:
            raise ValueError(f"{len(self.specs)} specs for n_sites={self.n_sites}")
        if self.n_sites < 1 or self.n_sites > 999:
            raise ValueError("n_sites must be in 1..999 (site ids b001..b999)")
        if self.step_s <= 0:
            raise ValueError("step_s must be > 0")
        if self.modbus_timeout_s <= 0:
            raise ValueError("modbus_timeout_s must be > 0")
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")


class TestBed:
    """The simulated fleet and its servers. Not thread-safe: drive it from one event loop.

    `clock` is read at every step; a caller may swap it between `__aenter__` and `run()`
    (the CLI starts on a still clock, then runs an accelerated one from the start time).
    """

    __test__ = False

    def __init__(self, config: TestBedConfig, clock: Clock, out_dir: Path) -> None:
        self.config = config
        self.clock = clock
        self.out_dir = Path(out_dir).resolve()
        self.buildings: dict[str, Building] = {}
        self.modbus: dict[str, dict[str, ModbusDeviceServer]] = {}
        self.bms: dict[str, BmsDevice] = {}
        self._manifest: Manifest | None = None
        self.steps = 0
        self._last_t: float | None = None

    @property
    def manifest(self) -> Manifest:
        """The running test bed's manifest; `RuntimeError` outside `async with`."""
        if self._manifest is None:
            raise RuntimeError("the test bed is not running (use `async with TestBed(...)`)")
        return self._manifest

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> TestBed:
        try:
            await self._start()
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stop()

    async def _start(self) -> None:
        cfg = self.config
        specs = list(cfg.specs) or draw_specs(cfg.n_sites, seed=cfg.seed, mix=cfg.asset_mix)
        profiles = await asyncio.to_thread(
            fleet_profiles, specs, start=cfg.start, seed=cfg.seed, days=cfg.profile_days
        )
        now = self.clock.now()
        maps: dict[str, dict[str, RegisterMap]] = {}
        for spec, prof in zip(specs, profiles, strict=True):
            b = build(spec, prof)
            b.step(now, 0.0)  # profiles and registers at the start time, no energy yet
            self.buildings[spec.site] = b
            maps[spec.site] = self._maps(b)
            self.modbus[spec.site] = {
                dev: ModbusDeviceServer(f"{spec.site}/{dev}", m, unit_id=1, host=cfg.host)
                for dev, m in maps[spec.site].items()
            }
        await asyncio.gather(*(s.start() for servers in self.modbus.values() for s in servers.values()))
        if cfg.bacnet:
            for i, (site, b) in enumerate(self.buildings.items()):
                self.bms[site] = BmsDevice(b, device_id=BACNET_DEVICE_ID_BASE + i + 1, host=cfg.host)
            await asyncio.gather(*(d.start() for d in self.bms.values()))
        self._last_t = self.clock.monotonic()
        self._manifest = self._write_files(maps)
        log.info(
            "test bed: %d sites, %d Modbus servers, %d BACnet devices, out %s",
            len(self.buildings),
            sum(len(s) for s in self.modbus.values()),
            len(self.bms),
            self.out_dir,
        )

    async def _stop(self) -> None:
        servers = [s for servers in self.modbus.values() for s in servers.values()]
        await asyncio.gather(*(s.stop() for s in servers), return_exceptions=True)
        for d in self.bms.values():
            try:
                await d.stop()
            except Exception:
                log.exception("stopping %s", d.address)
        if self.bms:
            await asyncio.sleep(0.05)  # datagram transports close on a later loop iteration
        self._manifest = None

    @staticmethod
    def _maps(b: Building) -> dict[str, RegisterMap]:
        """The Modbus devices of `b`, by device id (the role's name: one device per role)."""
        maps: dict[str, RegisterMap] = {Role.METER: meter_map(b.meter, serial=f"{b.site}-meter")}
        if b.pv is not None:
            maps[Role.PV] = pv_map(b.pv, serial=f"{b.site}-pv")
        if b.battery is not None:
            maps[Role.BATTERY] = battery_map(b.battery)
        if b.ev is not None:
            maps[Role.EV] = ev_map(b.ev)
        if b.hp is not None:
            maps[Role.HP] = hp_map(b.hp)
        return {str(k): v for k, v in maps.items()}

    def _write_files(self, maps: dict[str, dict[str, RegisterMap]]) -> Manifest:
        cfg = self.config
        sites_dir = self.out_dir / "sites"
        state_dir = self.out_dir / "state"
        sites_dir.mkdir(parents=True, exist_ok=True)
        state_dir.mkdir(parents=True, exist_ok=True)
        map_names: dict[str, Any] = {
            Role.METER: "sunspec-meter",
            Role.PV: "sunspec-pv",
            Role.BATTERY: "vendor-battery",
            Role.EV: "vendor-ev",
            Role.HP: "vendor-hp",
        }
        sites: list[SiteManifest] = []
        for site, b in self.buildings.items():
            endpoints = [
                ModbusEndpoint(device=dev, map=map_names[dev], host=s.host, port=s.port, unit_id=s.unit_id)
                for dev, s in self.modbus[site].items()
            ]
            bms = self.bms.get(site)
            bacnet = BacnetEndpoint(address=bms.address, device_id=bms.device_id) if bms else None
            doc = site_config(
                b,
                maps[site],
                endpoints,
                bacnet,
                broker_host=cfg.broker_host,
                broker_port=cfg.broker_port,
                state_dir=state_dir,
                modbus_timeout_s=cfg.modbus_timeout_s,
            )
            path = sites_dir / f"{site}.yaml"
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
            assets = [AssetInfo(id=METER, kind=Role.METER, device=Role.METER)]
            if b.pv is not None:
                assets.append(AssetInfo(id=PV, kind=Role.PV, device=Role.PV, p_nominal_kw=b.pv.inverter_kw))
            if b.battery is not None:
                assets.append(
                    AssetInfo(
                        id=BATTERY,
                        kind=Role.BATTERY,
                        device=Role.BATTERY,
                        p_nominal_kw=b.battery.p_charge_max_kw,
                        capacity_kwh=b.battery.capacity_kwh,
                    )
                )
            if b.ev is not None:
                assets.append(AssetInfo(id=EV, kind=Role.EV, device=Role.EV, p_nominal_kw=b.ev.p_max_kw))
            if b.hp is not None:
                assets.append(
                    AssetInfo(
                        id=HP,
                        kind=Role.HP,
                        device=Role.HP,
                        p_nominal_kw=b.hp.p_max_kw,
                        capacity_kwh=round(b.hp.tank_kwh, 3),
                    )
                )
            if bacnet is not None:
                assets.append(AssetInfo(id=ZONE, kind=Role.HVAC, device=bacnet.device))
            sites.append(SiteManifest(site=site, config=path, assets=assets, modbus=endpoints, bacnet=bacnet))
        manifest = Manifest(
            created=datetime.now(UTC),
            start=cfg.start,
            seed=cfg.seed,
            step_s=cfg.step_s,
            broker_host=cfg.broker_host,
            broker_port=cfg.broker_port,
            sites=sites,
        )
        (self.out_dir / "manifest.json").write_text(manifest.model_dump_json(indent=2))
        return manifest

    # -- running ---------------------------------------------------------------------

    def step(self, dt_s: float, *, now: datetime | None = None) -> None:
        """Advance every building by `dt_s` ending at `now` (default `clock.now()`).

        Then refresh registers and BMS objects.
        """
        now = self.clock.now() if now is None else now
        for site, b in self.buildings.items():
            b.step(now, dt_s)
            for s in self.modbus[site].values():
                s.refresh()
            bms = self.bms.get(site)
            if bms is not None:
                bms.sync()
        self.steps += 1

    async def run(self) -> None:
        """Step every `step_s` of clock time (dt = clock time actually elapsed) until cancelled."""
        last = self.clock.monotonic()
        step_s = self.config.step_s
        while True:
            await self.clock.sleep(step_s)
            t = self.clock.monotonic()
            dt, last = t - last, t
            if dt <= 0:
                continue
            # A late wake-up (a busy host, an accelerated clock) is caught up in steps of at
            # most step_s, each at its own time: one long step would run a heat pump's
            # thermostat or an EV session over hours of profile in one go.
            now = self.clock.now()
            n = max(1, math.ceil(dt / step_s - 1e-9))
            for k in range(n, 0, -1):
                self.step(dt / n, now=now - timedelta(seconds=(k - 1) * dt / n))

    def fault(self, site: str, device: str, kind: FaultKind) -> None:
        """Make Modbus device `device` ("meter", "pv", "battery", "ev", "hp") of `site` misbehave."""
        try:
            server = self.modbus[site][device]
        except KeyError:
            raise KeyError(f"no Modbus device {device!r} at site {site!r}") from None
        server.set_fault(kind)

    # -- reporting -------------------------------------------------------------------

    @property
    def p_net_kw(self) -> float:
        """Sum of all grid connections (load-positive)."""
        return sum(b.p_net_kw for b in self.buildings.values())

    @property
    def modbus_reads(self) -> int:
        """Modbus reads served so far, over every device of every site."""
        return sum(s.reads for servers in self.modbus.values() for s in servers.values())

    @property
    def modbus_writes(self) -> int:
        """Modbus writes served so far, over every device of every site."""
        return sum(s.writes for servers in self.modbus.values() for s in servers.values())

    def ports(self) -> list[tuple[str, int]]:
        """Every (protocol, port) the bed listens on: ("tcp", p) for Modbus, ("udp", p) for BACnet."""
        out = [("tcp", s.port) for servers in self.modbus.values() for s in servers.values()]
        out += [("udp", d.port) for d in self.bms.values()]
        return out
