"""The controller's DR topics: accepted requests retained on `dr/{program}/request`, reports beside them.

Why functions over the session: the DR API and the activator publish through them, and
each says with its result whether the broker took the message (False: offline, logged),
so an HTTP answer can say "accepted, not yet published" instead of failing.
"""

from __future__ import annotations

import asyncio
import logging

from cloud_controller.dr.service import DrService
from protocols.codec import encode
from protocols.messages import DRRequest
from protocols.mqtt import MqttSession, NotConnectedError, PublishError
from protocols.topics import dr_report, dr_request

__all__ = ["publish_dr_report", "publish_dr_request", "retain_newest_dr"]

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
