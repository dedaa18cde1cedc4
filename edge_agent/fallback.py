"""When to fall back and what the safe state writes (pure): every step passes the §14a floor.

The agent's supervisor asks `reason()` every tick (at most one poll interval apart),
so the safe state is written within one poll interval of the deadline.
`plan_safe_state` turns an asset's configured safe state into the writes that may be
made: a write is raised to the guaranteed minimum (or skipped if its power is unknown),
and a BACnet relinquish is kept only if the BMS's relinquish default, read at start,
is itself at or above the minimum; otherwise the minimum is written instead.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from edge_agent.config import AssetConfig
from edge_agent.floor import floor_write, min_power_kw, power_scale
from protocols.messages import Command

__all__ = ["FallbackPolicy", "SafeWrite", "plan_safe_state", "release_delay_s", "relinquish_needs_check"]


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


def release_delay_s(site: str, spread_s: float) -> float:
    """This site's share of a fleet-wide release spread: SHA-256 of the site id → [0, spread_s).

    Why: when the controller goes away, every site's commands end and its fallback timer
    runs out within the same few seconds; lifting every cap at once makes a fleet-wide
    rebound peak (IEEE 2030.5 and OpenADR randomise event starts and ends for the same
    reason). A hash, not a random draw, so a site keeps its slot across restarts and a
    test can predict it; SHA-256 spreads any set of ids evenly over the interval.
    """
    if spread_s <= 0:
        return 0.0
    u = int.from_bytes(hashlib.sha256(site.encode()).digest()[:8], "big") / 2**64
    return u * spread_s


@dataclass
class FallbackPolicy:
    """Monotonic-time bookkeeping of the last valid command and the broker connection.

    `release_delay_s` (from `release_delay_s()`) postpones both ways a cap is lifted — the
    fallback entry and a command's end without a successor — by this site's slot.
    """

    after_s: float
    last_valid_mono: float
    broker_down_since: float | None = None
    active: dict[str, Command] = field(default_factory=dict)  # asset -> command in force
    release_delay_s: float = 0.0

    def on_valid(self, cmd: Command, mono: float, *, track: bool = True) -> None:
        """A valid command arrived: restart the fallback timer and remember it as in force for its asset.

        `track=False` (a DR write, which `edge_agent.dr_writes` relinquishes itself at its end)
        only restarts the timer: its end must not put the whole asset into its safe state.
        """
        self.last_valid_mono = mono
        if track:
            self.active[cmd.asset] = cmd

    def on_broker(self, connected: bool, mono: float) -> None:
        """Track the broker connection: the time it went down, cleared when it is back."""
        if connected:
            self.broker_down_since = None
        elif self.broker_down_since is None:
            self.broker_down_since = mono

    def reason(self, mono: float) -> str | None:
        """Why the site must be in fallback now, or None."""
        after = self.after_s + self.release_delay_s
        spread = f" (+{self.release_delay_s:.0f} s: this site's release slot)" if self.release_delay_s else ""
        if mono - self.last_valid_mono >= after:
            return f"no valid command for {self.after_s:g} s{spread}"
        if self.broker_down_since is not None and mono - self.broker_down_since >= after:
            return f"no broker connection for {self.after_s:g} s{spread}"
        return None

    def pop_expired(self, now: datetime) -> list[Command]:
        """Commands whose validity (plus this site's release slot) ended without a successor."""
        delay = timedelta(seconds=self.release_delay_s)
        ended = [cmd for cmd in self.active.values() if now >= cmd.valid_until + delay]
        for cmd in ended:
            del self.active[cmd.asset]
        return ended
