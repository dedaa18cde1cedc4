"""Every asset to its safe state, once, without the agent: the step systemd runs after any stop.

The agent writes safe states itself when it falls back or cannot go on, but a process
killed by SIGKILL, the OOM killer or a crash writes nothing, and a restart loop may leave
the last caps on the equipment with nobody to lift them. `gridflex edge safe-state CONFIG`
(the unit's `ExecStopPost=`) builds the same drivers and the same `SafeStateWriter` as
the agent, so each write passes the §14a floor and a BMS relinquish is checked against
its default, and reports every step. It needs no broker and no queue file.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from edge_agent.config import SiteConfig
from edge_agent.drivers import BacnetStack, make_driver
from edge_agent.safe_state import SafeStateWriter
from protocols.errors import GridflexError

__all__ = ["SafeExitEvent", "SafeExitReport", "write_safe_state"]


@dataclass(frozen=True)
class SafeExitEvent:
    """One thing the safe-state writer reported (same kinds as the agent's events)."""

    kind: str
    severity: str
    message: str
    asset: str | None = None


@dataclass
class SafeExitReport:
    """What was reported; `ok` unless a write failed, was refused or did not finish in time."""

    events: list[SafeExitEvent] = field(default_factory=list)
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        """True when every asset's safe state was written (warnings allowed, nothing critical)."""
        return not self.timed_out and all(e.severity != "critical" for e in self.events)


async def write_safe_state(config: SiteConfig, *, timeout_s: float = 15.0) -> SafeExitReport:
    """Write every asset's safe state through fresh drivers, bounded by `timeout_s`, then close them."""
    report = SafeExitReport()

    def sink(kind: str, severity: str, message: str, asset: str | None = None) -> None:
        report.events.append(SafeExitEvent(kind, severity, message, asset))

    stack = BacnetStack(config.bacnet)
    drivers = {dev.id: make_driver(dev, stack) for dev in config.devices}
    writer = SafeStateWriter(config, drivers, sink)
    try:
        async with asyncio.timeout(timeout_s):
            await writer.check_at_start()
            for asset in config.assets:
                await writer.apply(asset)
    except TimeoutError:
        report.timed_out = True
        sink("safe_state_failed", "critical", f"safe state not written within {timeout_s:g} s")
    finally:
        for driver in drivers.values():
            with contextlib.suppress(GridflexError):
                await driver.close()
        with contextlib.suppress(GridflexError):
            await stack.close()
    return report
