"""The controller's periodic loops: watermarks, the plan every period, the guard between plans.

Why apart from `CloudController`: each loop is only timing (when to act, what to skip);
what it does each round is the controller's (`dispatch_once`, `guard_once`) or one store
call and a publish. The controller starts them in its TaskGroup (service.py).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from cloud_controller.store.base import STORE_ERRORS
from protocols.codec import encode
from protocols.messages import Stored
from protocols.mqtt import NotConnectedError, PublishError
from protocols.topics import site_topic

if TYPE_CHECKING:
    from cloud_controller.service import CloudController

__all__ = [
    "WATERMARK_EVERY_S",
    "claim_period",
    "dispatch_loop",
    "guard_loop",
    "period_start",
    "watermark_loop",
]

log = logging.getLogger(__name__)

WATERMARK_EVERY_S = 0.2  # wall seconds between watermark publications (coalesced per site)


def period_start(now: datetime, period_s: float) -> datetime:
    """The start of the control period `now` lies in (periods are aligned to the epoch)."""
    ts = now.timestamp()
    return datetime.fromtimestamp(ts - ts % period_s, tz=UTC)


async def watermark_loop(ctl: CloudController) -> None:
    """Publish each changed site's stored watermark, retained, at most every `WATERMARK_EVERY_S`."""
    while True:
        await asyncio.sleep(WATERMARK_EVERY_S)
        if not ctl.ingest.dirty or not ctl.session.connected.is_set():
            continue
        dirty, ctl.ingest.dirty = ctl.ingest.dirty, set()
        # one store call per round, off the event loop (PostgreSQL: one round trip, not one per site)
        stored = await asyncio.to_thread(ctl.store.watermarks)
        for site in sorted(dirty):
            msg = Stored(site=site, ts=ctl.clock.now(), seq=stored.get(site, -1))
            try:
                await ctl.session.publish(site_topic(site, "stored"), encode(msg), retain=True)
                ctl.stats.watermarks_published += 1
            except (NotConnectedError, PublishError):
                ctl.ingest.dirty.add(site)  # publish again after reconnecting


async def dispatch_loop(ctl: CloudController) -> None:
    """Plan once a period, at the period's boundary, when this process claims the period."""
    await asyncio.to_thread(ctl.planner)  # build the LP before the first period
    await ctl.session.wait_connected(timeout_s=3600)
    await ctl.clock.sleep(min(60.0, ctl.config.control.period_s / 10))  # retained states arrive
    while True:
        # the next boundary follows the period this round started in, not the time it ended:
        # a plan that finishes past the boundary (one started late in its period, e.g. right
        # after a takeover) is followed at once by the next period's, not a period later
        started = ctl.clock.now()
        if await ctl._claim_period():
            await ctl.dispatch_once()
        period_s = ctl.config.control.period_s
        boundary = period_start(started, period_s) + timedelta(seconds=period_s)
        await ctl.clock.sleep(max(0.0, (boundary - ctl.clock.now()).total_seconds()))


async def claim_period(ctl: CloudController) -> bool:
    """Claim the current period in the store before planning it: no period is dispatched twice.

    A successor that took the lease within a period its predecessor already claimed skips
    it (and plans at the next boundary); without a lease there is nothing to claim.
    """
    if ctl.lease is None:
        return True
    token = ctl._fence_now()
    now = ctl.clock.now()
    period = period_start(now, ctl.config.control.period_s)
    why = "no lease"
    if token is not None:
        try:
            claimed = await asyncio.to_thread(
                ctl.store.claim_period,
                ctl.lease.name,
                ctl.lease.holder,
                token,
                period.timestamp(),
                now.timestamp(),
            )
        except STORE_ERRORS as exc:  # unsure whether another dispatched it: sending nothing is safe
            claimed, why = False, f"the store did not answer the claim ({exc})"
        else:
            why = "already dispatched (claimed by an earlier holder)"
        if claimed:
            return True
    ctl.stats.periods_skipped += 1
    log.warning("period %s not dispatched: %s", period.isoformat(), why)
    return False


async def guard_loop(ctl: CloudController) -> None:
    """One guard step every `control.guard_period_s` (it corrects the last plan; see `guard_once`)."""
    period = ctl.config.control.guard_period_s
    while True:
        await ctl.clock.sleep(period)
        await ctl.guard_once()
