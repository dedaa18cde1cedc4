"""The test-bed manifest schema: what a running test bed serves, as `DIR/manifest.json`.

Written by `simulators.testbed`, read by tests, tools and the controller's registry, so
the one schema lives here in the contract package (strict: unknown keys are an error).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from protocols.assets import BMS, Role
from protocols.errors import ConfigError

__all__ = ["AssetInfo", "BacnetEndpoint", "Manifest", "ModbusEndpoint", "SiteManifest"]

RegisterMapName = Literal["sunspec-pv", "sunspec-meter", "vendor-battery", "vendor-ev", "vendor-hp"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModbusEndpoint(_Model):
    """One Modbus TCP device: the id it has in the site YAML's `devices`, and where it listens."""

    device: str
    map: RegisterMapName
    host: str
    port: int
    unit_id: int


class BacnetEndpoint(_Model):
    """The building's BACnet/IP BMS device and where it listens."""

    device: str = BMS
    address: str  # "127.0.0.1:47809"
    device_id: int


class AssetInfo(_Model):
    """One asset of a simulated site: its id, role (`protocols.assets.Role` value) and ratings."""

    id: str
    kind: Role
    device: str  # the Modbus device (or "bms") serving it
    p_nominal_kw: float | None = None
    capacity_kwh: float | None = None


class SiteManifest(_Model):
    """One simulated building: its site YAML and the devices serving it."""

    site: str
    config: Path  # the site YAML (absolute)
    assets: list[AssetInfo]
    modbus: list[ModbusEndpoint]
    bacnet: BacnetEndpoint | None = None

    def endpoint(self, device: str) -> ModbusEndpoint:
        """The Modbus endpoint of `device` at this site; `KeyError` if the site has none by that name."""
        for e in self.modbus:
            if e.device == device:
                return e
        raise KeyError(device)


class Manifest(_Model):
    """The whole test bed: when and how it runs, the broker, every site."""

    created: datetime  # wall time the test bed started (UTC)
    start: datetime  # simulated start
    seed: int
    step_s: float
    broker_host: str
    broker_port: int
    sites: list[SiteManifest]

    def site(self, site: str) -> SiteManifest:
        """The manifest of site `site`; `KeyError` if the test bed has no such site."""
        for s in self.sites:
            if s.site == site:
                return s
        raise KeyError(site)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        """Read and validate `path`; a `ConfigError` names the file, the key and the reason."""
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read: {exc.strerror}", file=str(path)) from None
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            err = exc.errors(include_url=False, include_input=False)[0]
            key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
            raise ConfigError(err["msg"], file=str(path), key=key or None) from None
