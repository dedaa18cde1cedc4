"""The VEN's subscriptions on the VTN: one per mapped programme, EVENT POST/PUT/DELETE to our callback.

Why one per programme: a 3.1 subscription carries one `programID`, and one per mapped
programme means the VTN tells us only of events we act on. The bearer token is generated
at each start (`new_token`), so a token left in a VTN by a crashed run is worthless; the
subscription of an earlier run (same programme, same `clientName`, same callback URL —
the VTN shows a VEN client only its own) is updated with the new token instead of
duplicated, and further copies deleted. At a clean stop every subscription of the run is
deleted; a crash leaves them (they point at a token nobody holds; the next start reuses them).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cloud_controller.openadr.ven.clients import VenHttpError, VtnClient

__all__ = ["OPERATIONS", "Subscriptions", "new_token", "subscription_body"]

log = logging.getLogger(__name__)

#: What we hear of: a new event, a changed one, a withdrawn one (each answered by a poll).
OPERATIONS = ("POST", "PUT", "DELETE")


def new_token() -> str:
    """A fresh bearer token for the VTN's notifications (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def subscription_body(ven_name: str, program_id: str, callback_url: str, token: str) -> dict[str, Any]:
    """The subscription of one programme's events."""
    return {
        "clientName": ven_name,
        "programID": program_id,
        "objectOperations": [
            {
                "objects": ["EVENT"],
                "operations": list(OPERATIONS),
                "callbackUrl": callback_url,
                "bearerToken": token,
            }
        ],
    }


def _ours(sub: Mapping[str, Any], callback_url: str) -> bool:
    return any(op.get("callbackUrl") == callback_url for op in sub.get("objectOperations") or [])


@dataclass
class Subscriptions:
    """This run's subscriptions (programme id → subscription id) with this run's token."""

    vtn: VtnClient
    ven_name: str
    callback_url: str
    token: str
    ids: dict[str, str] = field(default_factory=dict)
    created: int = 0
    updated: int = 0
    deleted: int = 0

    async def ensure(self, program_ids: Mapping[str, str]) -> None:
        """Subscribe to each programme not yet subscribed in this run (reusing an earlier run's)."""
        for program_id in program_ids.values():
            if program_id in self.ids:
                continue
            body = subscription_body(self.ven_name, program_id, self.callback_url, self.token)
            found = await self.vtn.search(
                "subscriptions", {"programID": program_id, "clientName": self.ven_name}
            )
            mine = [s for s in found if _ours(s, self.callback_url)]
            if mine:
                kept = str(mine[0]["id"])
                await self.vtn.update("subscriptions", kept, body)
                self.updated += 1
                for extra in mine[1:]:
                    if await self.vtn.delete("subscriptions", str(extra["id"])):
                        self.deleted += 1
            else:
                kept = str((await self.vtn.create("subscriptions", body))["id"])
                self.created += 1
            self.ids[program_id] = kept
            log.info("VEN: subscribed to programme %s's events (subscription %s)", program_id, kept)

    async def delete_all(self) -> None:
        """Delete this run's subscriptions (a clean stop); one that fails is logged, the rest still go."""
        for program_id, sub_id in list(self.ids.items()):
            try:
                if await self.vtn.delete("subscriptions", sub_id):
                    self.deleted += 1
            except VenHttpError as exc:
                log.warning("VEN: subscription %s not deleted: %s", sub_id, exc)
                continue
            del self.ids[program_id]
