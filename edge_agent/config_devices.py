"""The devices and points of the site YAML: Modbus/BACnet device models and `PointConfig`.

Split out of `edge_agent.config` (which re-exports these names, and is where callers
import them from): the part of the config the drivers read, field by field. Also holds
the frozen, extra-forbidding `_Model` base and the id/point-name/duration field types
that the site models in `edge_agent.config_site` share.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocols.topics import ID_PATTERN

__all__ = [
    "BacnetClientConfig",
    "BacnetDevice",
    "DeviceConfig",
    "Id",
    "ModbusDevice",
    "PointConfig",
    "PointName",
    "PositiveS",
]

Id = Annotated[str, Field(pattern=f"^{ID_PATTERN}$")]
PointName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
PositiveS = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class BacnetClientConfig(_Model):
    """The agent's own BACnet/IP endpoint (one for all BACnet devices of the site)."""

    ip: str = "127.0.0.1/8"  # interface address/prefix BAC0 binds to
    port: int | None = Field(default=None, ge=1, le=65535)  # None = a free UDP port
    device_id: int = Field(default=3_999_001, ge=0, le=4_194_302)


class ModbusDevice(_Model):
    """A Modbus/TCP device: where it is, its unit id, timeout and how far reads may coalesce."""

    id: Id
    driver: Literal["modbus"]
    host: str
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=255)
    timeout_s: PositiveS = 1.0
    max_gap: int = Field(default=8, ge=0, le=100)  # coalesce reads across gaps up to this many registers


class BacnetDevice(_Model):
    """A BACnet/IP device, by its address and device instance."""

    id: Id
    driver: Literal["bacnet"]
    address: str = Field(pattern=r"^[^\s]+$")
    device_id: int = Field(ge=0, le=4_194_302)
    timeout_s: PositiveS = 2.0


DeviceConfig = Annotated[ModbusDevice | BacnetDevice, Field(discriminator="driver")]


class PointConfig(_Model):
    """One measured or written value; Modbus fields or a BACnet `object`, checked per device."""

    name: PointName
    device: Id
    # Modbus
    table: Literal["holding", "input", "coil", "discrete"] | None = None
    address: int | None = Field(default=None, ge=0, le=65535)
    type: Literal["int16", "uint16", "int32", "uint32", "float32", "bool"] | None = None
    word_order: Literal["big", "little"] = "big"
    byte_order: Literal["big", "little"] = "big"
    sf_address: int | None = Field(default=None, ge=0, le=65535)
    # BACnet
    object: str | None = Field(default=None, pattern=r"^[A-Za-z]+:\d+$")
    bacnet_property: str = Field(default="presentValue", alias="property", pattern=r"^[A-Za-z]+$")
    priority: int | None = Field(default=None, ge=1, le=16)
    # Both
    scale: float = 1.0
    offset: float = 0.0
    sign: float = 1.0
    unit: str = Field(default="", max_length=64)
    interval_s: PositiveS | None = None
    deadband: float = Field(default=0.0, ge=0)
    max_age_s: PositiveS | None = None
    writable: bool = False
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} > max {self.max}")
        if self.scale == 0 or self.sign == 0:
            raise ValueError("scale and sign must not be 0")
        return self

    @property
    def register_count(self) -> int:
        """How many 16-bit registers the point's type occupies (2 for 32-bit types)."""
        return 2 if self.type in ("int32", "uint32", "float32") else 1
