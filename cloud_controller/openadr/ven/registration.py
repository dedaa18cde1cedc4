"""The VEN's own objects on the VTN: its VEN object (by `vtn.ven_name`) and its resources (3.1).

Why look up before creating: the VTN keys VENs by name (a second `POST /vens` with the same
`venName` is a 409), and a VEN restarted without its state file must find the object it
made before, not fail or make another. So on start `GET /vens?venName=` → the one found is
ours (the VTN shows a VEN client only the VENs of its own client id), updated by `PUT`
when its attributes or targets differ from the config; none found → `POST /vens`. Each
configured resource likewise by `GET /resources?venID=&resourceName=`. The bodies and the
"does it differ" test are pure (`ven_body`, `resource_body`, `differs`); `register` makes
the calls. A resource dropped from the config is left on the VTN (another operator's or
a BL's may be there; deleting is a decision, not a side effect).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cloud_controller.openadr.ven.clients import VtnClient
from cloud_controller.openadr.ven.config import Attribute, ResourceConfig, VenConfig

__all__ = ["Registration", "differs", "register", "resource_body", "ven_body"]

log = logging.getLogger(__name__)


@dataclass
class Registration:
    """What `register` found or made: our VEN's id, each resource's id, how many objects were written."""

    ven_id: str
    resource_ids: dict[str, str] = field(default_factory=dict)
    created: int = 0
    updated: int = 0


def _attrs(attributes: list[Attribute]) -> list[dict[str, Any]]:
    return [{"type": a.type, "values": list(a.values)} for a in attributes]


def ven_body(cfg: VenConfig) -> dict[str, Any]:
    """The VEN object as the config describes it (no server-set fields)."""
    reg = cfg.registration
    body: dict[str, Any] = {"venName": cfg.vtn.ven_name}
    if reg.attributes:
        body["attributes"] = _attrs(reg.attributes)
    if reg.targets:
        body["targets"] = list(reg.targets)
    return body


def resource_body(resource: ResourceConfig, ven_id: str) -> dict[str, Any]:
    """One resource of our VEN as the config describes it."""
    body: dict[str, Any] = {"resourceName": resource.resource_name, "venID": ven_id}
    if resource.attributes:
        body["attributes"] = _attrs(resource.attributes)
    if resource.targets:
        body["targets"] = list(resource.targets)
    return body


def differs(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """True when a field we set (or leave out: absent = empty) is not as stored on the VTN."""
    keys = set(wanted) | {"attributes", "targets"}
    return any((stored.get(k) or None) != (wanted.get(k) or None) for k in keys)


async def _ensure(
    vtn: VtnClient, kind: str, query: dict[str, str], wanted: dict[str, Any], reg: Registration
) -> str:
    # filtered again here: a VTN that ignores a query parameter must not hand us another's object
    found = [o for o in await vtn.search(kind, query) if all(o.get(k) == v for k, v in query.items())]
    if not found:
        made = await vtn.create(kind, wanted)
        reg.created += 1
        log.info("VEN: %s %s created (id %s)", kind, query, made["id"])
        return str(made["id"])
    obj = found[0]
    if differs(obj, wanted):
        await vtn.update(kind, str(obj["id"]), wanted)
        reg.updated += 1
        log.info("VEN: %s %s updated (id %s)", kind, query, obj["id"])
    return str(obj["id"])


async def register(vtn: VtnClient, cfg: VenConfig) -> Registration:
    """Find or create our VEN object, then each configured resource; idempotent across restarts."""
    reg = Registration(ven_id="")
    reg.ven_id = await _ensure(vtn, "vens", {"venName": cfg.vtn.ven_name}, ven_body(cfg), reg)
    for resource in cfg.registration.resources:
        query = {"venID": reg.ven_id, "resourceName": resource.resource_name}
        reg.resource_ids[resource.resource_name] = await _ensure(
            vtn, "resources", query, resource_body(resource, reg.ven_id), reg
        )
    return reg
