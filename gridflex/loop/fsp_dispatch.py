"""The FSPs' dispatch of their market orders in the live loop: `p_limit_kw` on EVs and heat pumps, ISP by ISP.

Why: the FSPs offer what their running EVs and heat pumps can give (`fsp_prognosis`), so
an order is delivered by limiting those devices, as the twin does (`twin_market.limits_for`).
A DR request of the market programme selects batteries (without BACnet the only assets it
can move), which the offers never counted.

The limits are the twin's (`limits_for`, reused): in each ordered ISP every EV and heat
pump of the order's sites gets p_limit_kw = nominal − f·(nominal − floor), f the ISP's cut
share. They leave through the controller's command path: `CommandBuilder` signs each with
its site's key, the controller's sender (`CloudController._publish_commands`, as the DR
activator and the bench use it) stamps the lease's fence, tracks the ack and publishes on
`site/{id}/cmd`. Each ISP's limits go out at its start (an agent refuses a command before
its `valid_from`) and are valid to its end: then the limit expires and the agent returns
the device to its owner's behaviour (the release), unless the next ordered ISP's limit
replaced it. A limit whose ISP ended before it could be sent is counted in `missed`.

Where: in the demo's FSP side (gridflex/loop), not inside `cloud_controller/market`: what
an order does to an FSP's devices is the FSP's (its prognosis, its devices' nominal kW),
the controller holds neither, and cloud_controller may not import gridflex. The
controller's own-order execution hands its own aggregator's orders here through
`OwnOrders.dispatch`; the scripted FSP's orders arrive from `OrderBridge`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cloud_controller import CommandBuilder, SiteRef
from gridflex.loop.fsp_prognosis import DevicePrognosis
from gridflex.loop.twin_market import limits_for
from protocols.market import ISP_S, MarketOrder
from protocols.messages import Command

__all__ = ["IspLimit", "LimitDispatch", "device_nominal_kw", "order_limits"]

log = logging.getLogger(__name__)

ISP = timedelta(seconds=ISP_S)


@dataclass(frozen=True)
class IspLimit:
    """One device's limit in one ordered ISP."""

    order_id: str
    start: datetime
    site: str
    asset: str
    p_limit_kw: float

    @property
    def end(self) -> datetime:
        """When the limit expires (the ISP's end)."""
        return self.start + ISP


def order_limits(
    order: MarketOrder,
    sites: Sequence[str],
    prognosis: DevicePrognosis,
    nominal_kw: Mapping[tuple[str, str], float],
) -> list[IspLimit]:
    """The order's limits per ISP and device (`twin_market.limits_for`), in ISP order."""
    return [
        IspLimit(order.order_id, start, site, asset, kw)
        for start, site, asset, kw in limits_for(order, sites, prognosis, nominal_kw)
    ]


def device_nominal_kw(sites: Sequence[SiteRef]) -> dict[tuple[str, str], float]:
    """(site, asset) → nominal kW of every EV charger and heat pump in `sites`."""
    return {
        (s.site, a.asset): float(a.p_nominal_kw)
        for s in sites
        for a in s.assets
        if a.kind in ("ev", "hp") and a.p_nominal_kw
    }


@dataclass
class LimitDispatch:
    """Holds the orders' limits and sends each ISP's through `send` once it has started."""

    prognosis: DevicePrognosis
    nominal_kw: Mapping[tuple[str, str], float]
    builder: CommandBuilder
    send: Callable[[list[Command]], Awaitable[None]]
    now: Callable[[], datetime]
    #: limits not yet sent, in ISP order
    scheduled: list[IspLimit] = field(default_factory=list)
    #: order id -> the number of limits it was dispatched as
    orders: dict[str, int] = field(default_factory=dict)
    #: order id -> the ids of the commands sent for it
    sent: dict[str, list[str]] = field(default_factory=dict)
    #: limits whose ISP had ended before they could be sent
    missed: list[IspLimit] = field(default_factory=list)

    def accept(self, order: MarketOrder, sites: Sequence[str]) -> int:
        """Schedule `order`'s limits (once per order id); how many it has."""
        if order.order_id not in self.orders:
            limits = order_limits(order, sites, self.prognosis, self.nominal_kw)
            self.orders[order.order_id] = len(limits)
            self.scheduled = sorted(self.scheduled + limits, key=lambda x: (x.start, x.site, x.asset))
        return self.orders[order.order_id]

    def due(self, now: datetime) -> list[Command]:
        """The commands of the limits whose ISP holds `now` (taken off `scheduled`); ended ones go to `missed`."""
        out: list[Command] = []
        keep: list[IspLimit] = []
        for lim in self.scheduled:
            if lim.end <= now:
                self.missed.append(lim)
                log.warning("limit %s/%s of order %s missed its ISP", lim.site, lim.asset, lim.order_id)
            elif lim.start <= now:
                cmd = self.builder.one(now, lim.site, lim.asset, "p_limit_kw", lim.p_limit_kw, lim.end)
                self.sent.setdefault(lim.order_id, []).append(cmd.cmd_id)
                out.append(cmd)
            else:
                keep.append(lim)
        self.scheduled = keep
        return out

    async def step(self) -> list[Command]:
        """Send what is due now; the commands sent."""
        cmds = self.due(self.now())
        if cmds:
            await self.send(cmds)
        return cmds

    async def execute(self, order: MarketOrder, sites: Sequence[str]) -> str:
        """`OwnOrders.dispatch`: schedule the order and send what is due; its status."""
        n = self.accept(order, sites)
        await self.step()
        return f"{n} device limits"
