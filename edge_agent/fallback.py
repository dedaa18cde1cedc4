"""When to fall back and what the safe state writes (pure): every step passes the §14a floor.

The agent's supervisor asks `reason()` every tick (at most one poll interval apart),
so the safe state is written within one poll interval of the deadline.
`plan_safe_state` turns an asset's configured safe state into the writes that may be
made: a write is raised to the guaranteed minimum (or skipped if its power is unknown),
and a BACnet relinquish is kept only if the BMS's relinquish default, read at start,
is itself at or above the minimum; otherwise the minimum is written instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from edge_agent.config import AssetConfig
from edge_agent.floor import floor_write, min_power_kw, power_scale
from protocols.messages import Command

__all__ = ["FallbackPolicy", "SafeWrite", "plan_safe_state", "relinquish_needs_check"]


@dataclass(frozen=True, slots=True)
class SafeWrite:
    """One safe-state step as it will be done: write `value`, relinquish (`value` None), or skip."""

    point: str
    value: float | None
    relinquish: bool = False
    skip: bool = False
    note: str | None = None


def relinquish_needs_check(asset: AssetConfig, point: str) -> bool:
    """A relinquish on a floored asset's power point hands it to the BMS default: that must be checked."""
    return min_power_kw(asset) is not None and power_scale(asset, point) is not None


def plan_safe_state(asset: AssetConfig, relinquish_defaults: Mapping[str, float | None]) -> list[SafeWrite]:
    """The writes of `asset`'s safe state, each checked against the floor.

    `relinquish_defaults` holds the BMS relinquish default (point units) of each
    relinquished point as read from the device; a missing or None entry is unknown,
    and an unknown default is treated as unsafe (the minimum is written instead).
    """
    out = []
    for step in asset.safe_state:
        if step.relinquish:
            if not relinquish_needs_check(asset, step.point):
                out.append(SafeWrite(step.point, None, relinquish=True))
                continue
            default = relinquish_defaults.get(step.point)
            checked = floor_write(asset, step.point, default if default is not None else -math.inf)
            if default is not None and checked.value == default:
                out.append(SafeWrite(step.point, None, relinquish=True))
            else:
                why = "unknown" if default is None else f"{default:g}"
                out.append(
                    SafeWrite(step.point, checked.value, note=f"relinquish default {why}: {checked.note}")
                )
            continue
        assert step.write is not None
        checked = floor_write(asset, step.point, step.write)
        if checked.value is None:
            out.append(SafeWrite(step.point, None, skip=True, note=checked.note))
        else:
            out.append(SafeWrite(step.point, checked.value, note=checked.note))
    return out


@dataclass
class FallbackPolicy:
    """Monotonic-time bookkeeping of the last valid command and the broker connection."""

    after_s: float
    last_valid_mono: float
    broker_down_since: float | None = None
    active: dict[str, Command] = field(default_factory=dict)  # asset -> command in force

    def on_valid(self, cmd: Command, mono: float) -> None:
        """A valid command arrived: restart the fallback timer and remember it as in force for its asset."""
        self.last_valid_mono = mono
        self.active[cmd.asset] = cmd

    def on_broker(self, connected: bool, mono: float) -> None:
        """Track the broker connection: the time it went down, cleared when it is back."""
        if connected:
            self.broker_down_since = None
        elif self.broker_down_since is None:
            self.broker_down_since = mono

    def reason(self, mono: float) -> str | None:
        """Why the site must be in fallback now, or None."""
        if mono - self.last_valid_mono >= self.after_s:
            return f"no valid command for {self.after_s:g} s"
        if self.broker_down_since is not None and mono - self.broker_down_since >= self.after_s:
            return f"no broker connection for {self.after_s:g} s"
        return None

    def pop_expired(self, now: datetime) -> list[Command]:
        """Commands whose validity ended without a successor for the same asset."""
        ended = [cmd for cmd in self.active.values() if now >= cmd.valid_until]
        for cmd in ended:
            del self.active[cmd.asset]
        return ended
