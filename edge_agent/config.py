"""The site YAML (docs/site-config.md) as frozen pydantic models, and `load_config`: the public face.

Validation happens once, at start: unknown keys, a point on a missing device, a
control on a read-only point or a safe state below the §14a minimum all fail here
with the dotted key that is wrong, instead of at 3 a.m. when fallback runs.
A device that says `template: <name>` is expanded first (`device_templates.expand_site`)
into the points a hand-written config has, so the same checks apply to both forms.

The names live in three modules, re-exported here (import them from this one):
`edge_agent.config_devices` (devices and points), `edge_agent.config_site` (`SiteConfig`,
its sections and the asset models) and `edge_agent.config_loader` (`load_config`).
"""

from __future__ import annotations

from edge_agent.config_devices import (
    BacnetClientConfig,
    BacnetDevice,
    DeviceConfig,
    ModbusDevice,
    PointConfig,
)
from edge_agent.config_loader import load_config
from edge_agent.config_site import (
    DEFAULT_GUARANTEED_MIN_KW,
    AssetConfig,
    AssetModel,
    BrokerConfig,
    BufferConfig,
    CloudConfig,
    CommandsConfig,
    ControlConfig,
    EnableWrite,
    FallbackConfig,
    GridConnectionConfig,
    HealthConfig,
    LimitsConfig,
    PollConfig,
    SafeAction,
    SigningConfig,
    SiteConfig,
    TlsConfig,
)

__all__ = [
    "DEFAULT_GUARANTEED_MIN_KW",
    "AssetConfig",
    "AssetModel",
    "BacnetClientConfig",
    "BacnetDevice",
    "BrokerConfig",
    "BufferConfig",
    "CloudConfig",
    "CommandsConfig",
    "ControlConfig",
    "DeviceConfig",
    "EnableWrite",
    "FallbackConfig",
    "GridConnectionConfig",
    "HealthConfig",
    "LimitsConfig",
    "ModbusDevice",
    "PointConfig",
    "PollConfig",
    "SafeAction",
    "SigningConfig",
    "SiteConfig",
    "TlsConfig",
    "load_config",
]
