"""The controller's DR topics, and the DR command path the market's own orders take (`dr_path`).

Accepted requests are retained on `dr/{program}/request`, reports published beside them.

Why functions over the session: the DR API and the activator publish through them, and
each says with its result whether the broker took the message (False: offline, logged),
so an HTTP answer can say "accepted, not yet published" instead of failing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from cloud_controller.dr.service import DrConflict, DrRefused, DrService
from cloud_controller.market.own_orders import DrPath
from protocols.codec import encode
from protocols.messages import DRRequest, Event
from protocols.mqtt import MqttSession, NotConnectedError, PublishError
from protocols.topics import dr_report, dr_request

if TYPE_CHECKING:
    from cloud_controller.service import CloudController

__all__ = ["dr_path", "publish_dr_report", "publish_dr_request", "retain_newest_dr"]

log = logging.getLogger(__name__)


async def publish_dr_request(session: MqttSession, request: DRRequest) -> bool:
    """Publish an accepted DR request on its programme's topic, retained (ARCHITECTURE §3); False if offline."""
    try:
        await session.publish(dr_request(request.program), encode(request), retain=True)
    except (NotConnectedError, PublishError) as exc:
        log.warning("DR request %s not published: %s", request.request_id, exc)
        return False
    return True


async def retain_newest_dr(session: MqttSession, dr: DrService, program: str) -> bool:
    """After a cancel: the programme's topic retains its newest live request again, or nothing (cleared)."""
    live = await asyncio.to_thread(dr.newest_accepted, program)
    try:
        payload = b"" if live is None else encode(live.request)
        await session.publish(dr_request(program), payload, retain=True)
    except (NotConnectedError, PublishError) as exc:
        log.warning("DR topic of %s not updated: %s", program, exc)
        return False
    return True


async def publish_dr_report(session: MqttSession, program: str, payload: bytes) -> bool:
    """A DR delivery report on `dr/{program}/report`, not retained; False if offline (kept at the API)."""
    try:
        await session.publish(dr_report(program), payload)
    except (NotConnectedError, PublishError) as exc:
        log.warning("DR report of %s not published: %s", program, exc)
        return False
    return True


def dr_path(ctl: CloudController) -> DrPath:
    """The steps of `POST /dr/requests` (api.py) for the market's own orders: submit, baselines, tick, topic."""
    from cloud_controller.dr.feeders import station_grid_of
    from cloud_controller.lease import EVENT_SITE

    async def execute(req: DRRequest) -> str:
        try:
            record = await asyncio.to_thread(
                ctl.dr.submit,
                req,
                dict(ctl.snapshots),
                sites=ctl.dr_activator.ctx.sites,
                grid=station_grid_of(ctl.built_planner, ctl.congestion.latest),
            )
        except DrConflict:  # recorded by another controller on the shared store meanwhile: carried out there
            known = await asyncio.to_thread(ctl.dr.requests.get, req.request_id)
            return "refused" if known is None else str(known.status)
        except DrRefused as exc:  # recorded `refused`; the reason names the sites and rules
            why = "; ".join(f"{r['site'] or '*'}: {r['reason']}" for r in exc.refusals)
            if not why:
                why = f"no {req.program!r} contract covers {', '.join(req.sites) or 'a site'}"
            raise ValueError(f"DR refused: {why}") from None
        ctl.dr_requests.append(req)
        await asyncio.to_thread(ctl.dr_activator.prepare, record)
        await ctl.dr_activator.tick()
        await ctl.publish_dr(req)
        return str(record.status)

    def status_of(request_id: str) -> str | None:
        known = ctl.dr.requests.get(request_id)
        return None if known is None else str(known.status)

    def event(kind: str, severity: str, message: str, details: dict[str, str]) -> None:
        try:
            ctl.store.write_event(
                Event(
                    site=EVENT_SITE,
                    ts=ctl.clock.now(),
                    kind=kind,
                    severity=severity,  # type: ignore[arg-type]
                    message=message,
                    details=dict(details),
                )
            )
        except Exception as exc:  # an event that cannot be stored is logged, never fatal
            log.warning("event %s not stored: %s", kind, exc)

    return DrPath(execute=execute, status_of=status_of, event=event)
