"""The one async interface every field-bus driver implements, and what it returns.

Drivers raise `DeviceError` for a device that cannot be reached (timeout, refused
connection, library failure) and return a `bad` `Reading` for a single point the
device refused (Modbus exception code, unknown BACnet object), so one wrong address
does not silence the rest of the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from edge_agent.config import PointConfig
from protocols.errors import GridflexError
from protocols.messages import Quality

__all__ = ["DeviceError", "Driver", "PointRef", "Reading"]


class DeviceError(GridflexError):
    """Any failure talking to a device, whatever library raised it."""


@dataclass(frozen=True, slots=True)
class PointRef:
    """A point of an asset; `key` (`asset.point`) is unique per site."""

    asset: str
    point: PointConfig

    @property
    def key(self) -> str:
        """`asset.point`: the name of the point's reading in `Latest` maps and samples."""
        return f"{self.asset}.{self.point.name}"


@dataclass(frozen=True, slots=True)
class Reading:
    """An engineering value in our sign convention, or None with the reason it is missing."""

    value: float | None
    quality: Quality = "good"
    reason: str | None = None


class Driver(Protocol):
    """A connection to one device."""

    async def read(self, points: Sequence[PointRef]) -> dict[str, Reading]:
        """Read `points`; keys are `PointRef.key`. Raise DeviceError if the device is unreachable."""
        ...

    async def write(self, point: PointConfig, value: float, *, priority: int | None = None) -> None:
        """Write an engineering value (our sign convention); the driver converts to raw."""
        ...

    async def relinquish(self, point: PointConfig) -> None:
        """Release our write (BACnet priority slot); drivers without priorities raise DeviceError."""
        ...

    async def close(self) -> None:
        """Drop the connection; the next call reconnects."""
        ...
