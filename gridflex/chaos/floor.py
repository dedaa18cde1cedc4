"""The §14a floor over N random commands through the agent's own decision (unsigned: the clamp path).

Every command the agent would write to an EV or heat pump is checked independently of the
floor code: the value it would hold, converted back to kW by the control's factor, must be
at least the asset's guaranteed minimum, and every write must lie in the point's min/max.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from pathlib import Path

from edge_agent.config import SiteConfig, load_config
from edge_agent.decision import decide
from gridflex.chaos.context import Ctx
from gridflex.chaos.inputs import EXAMPLE_SITE, random_command
from gridflex.chaos.result import Result
from protocols.messages import Command

__all__ = ["check_floor", "run"]

_TOL = 1e-6


class _NoReplay:
    """A guard that refuses nothing: every command reaches the clamp path."""

    def check(self, cmd: Command, now: datetime) -> None:
        """Accept."""


def example_site() -> SiteConfig:
    """The repository's example site (a PV, a battery, an EV and a heat pump with floors)."""
    return load_config(Path(__file__).resolve().parents[2] / EXAMPLE_SITE)


def check_floor(config: SiteConfig, n: int, seed: int) -> dict[str, int]:
    """Decide `n` random commands; count writes below a floor and writes outside a point's limits."""
    import random

    rng = random.Random(seed)
    floored = [a.id for a in config.assets if a.guaranteed_min_kw]
    others = [a.id for a in config.assets if not a.guaranteed_min_kw]
    power = ("p_limit_kw", "p_setpoint_kw")
    power_kinds = tuple(
        sorted({k for a in config.assets if a.guaranteed_min_kw for k in a.controls if k in power})
    )
    guard = _NoReplay()
    counts = {
        "commands": 0,
        "contract_refused": 0,
        "writes": 0,
        "floored_writes": 0,
        "below_floor": 0,
        "out_of_limits": 0,
    }
    now = datetime(2030, 1, 15, 12, tzinfo=UTC)
    for i in range(n):
        # 4 in 5 aim at a floored asset's power controls, the rest anywhere with any kind
        if rng.random() < 0.8:
            cmd = random_command(rng, config.site, floored, now, i, kinds=power_kinds)
        else:
            cmd = random_command(rng, config.site, floored + others, now, i)
        counts["commands"] += 1
        if cmd is None:
            counts["contract_refused"] += 1
            continue
        d = decide(cmd, config=config, key=None, guard=guard, now=now, ramp=None, now_mono=float(i))
        if d.write_value is None or d.control is None or d.asset is None:
            continue
        counts["writes"] += 1
        point = d.asset.point(d.control.point)
        w = d.write_value
        if (
            not math.isfinite(w)
            or (point.min is not None and w < point.min - _TOL)
            or (point.max is not None and w > point.max + _TOL)
        ):
            counts["out_of_limits"] += 1
        floor = d.asset.guaranteed_min_kw
        if floor and cmd.kind in ("p_limit_kw", "p_setpoint_kw"):
            counts["floored_writes"] += 1
            if (w - d.control.offset) / d.control.factor < floor - _TOL:
                counts["below_floor"] += 1
    return counts


async def run(ctx: Ctx) -> Result:
    """`check_floor` over 10,000 commands (1,000 in short mode) on the example site."""
    n = 1_000 if ctx.short else 10_000
    t0 = time.monotonic()
    counts = check_floor(example_site(), n, ctx.seed)
    return Result(
        "floor",
        f"{n:,} random unsigned commands through the agent's decide() (clamp path)",
        {k.replace("_", " "): v for k, v in counts.items()},
        ok=counts["below_floor"] == 0 and counts["out_of_limits"] == 0 and counts["floored_writes"] > 0,
        wall_s=time.monotonic() - t0,
    )
