"""What a running test bed serves: `DIR/manifest.json` (pydantic, strict) for tests and tools."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

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
    device: str = "bms"
    address: str  # "127.0.0.1:47809"
    device_id: int


class AssetInfo(_Model):
    id: str
    kind: Literal["meter", "pv", "battery", "ev", "hp", "hvac"]
    device: str  # the Modbus device (or "bms") serving it
    p_nominal_kw: float | None = None
    capacity_kwh: float | None = None


class SiteManifest(_Model):
    site: str
    config: Path  # the site YAML (absolute)
    assets: list[AssetInfo]
    modbus: list[ModbusEndpoint]
    bacnet: BacnetEndpoint | None = None

    def endpoint(self, device: str) -> ModbusEndpoint:
        for e in self.modbus:
            if e.device == device:
                return e
        raise KeyError(device)


class Manifest(_Model):
    created: datetime  # wall time the test bed started (UTC)
    start: datetime  # simulated start
    seed: int
    step_s: float
    broker_host: str
    broker_port: int
    sites: list[SiteManifest]

    def site(self, site: str) -> SiteManifest:
        for s in self.sites:
            if s.site == site:
                return s
        raise KeyError(site)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        return cls.model_validate_json(path.read_text())
