"""The VTN's rules, without HTTP: who may do what to which object, validation, server-set fields.

Roles (OpenADR 3.1 user guide §"Security"): the BL writes programs, events and VENs and
reads everything; a VEN reads programs and events, and creates, reads, updates and deletes
only its own reports, subscriptions, VEN object and resources (`clientID` = its OAuth client id, set
by the server). A refused call is a `VtnError` with the HTTP status and a problem detail
that names the field (400) or the rule (403/404/409).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from cloud_controller.openadr.models import MODELS, OBJECT_TYPES, SERVER_FIELDS
from cloud_controller.openadr.oauth import Client
from cloud_controller.openadr.store import OpenAdrStore
from protocols.clock import Clock

__all__ = ["KINDS", "Listener", "Vtn", "VtnError"]

log = logging.getLogger(__name__)

#: Called after every stored write: (kind, "create" | "update" | "delete", the object as stored).
Listener = Callable[[str, str, dict[str, Any]], None]

KINDS = tuple(MODELS)
#: Kinds a VEN may write, and whose objects it sees only when they carry its clientID.
_VEN_OWNED = ("reports", "subscriptions", "vens", "resources")
_READ_ALL = ("programs", "events")


class VtnError(Exception):
    """`status` and a problem detail (RFC 7807 shape, as the OpenADR 3 spec's `problem`)."""

    def __init__(
        self, status: int, title: str, detail: str, errors: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.problem: dict[str, Any] = {
            "type": "about:blank",
            "title": title,
            "status": status,
            "detail": detail,
        }
        if errors:
            self.problem["errors"] = errors


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _validated(kind: str, body: Any) -> dict[str, Any]:
    model = MODELS[kind]
    try:
        obj = model.model_validate(body)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "reason": e["msg"]}
            for e in exc.errors(include_url=False)
        ]
        detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
        raise VtnError(400, "invalid object", f"{OBJECT_TYPES[kind].lower()}: {detail}", errors) from None
    out = obj.model_dump(by_alias=True, mode="json", exclude_none=True)
    for f in SERVER_FIELDS:
        out.pop(f, None)
    if kind == "subscriptions":  # openadr3-client cannot parse an objectOperation without it (null is fine)
        for op in out["objectOperations"]:
            op.setdefault("bearerToken", None)
    return out


def _has_targets(obj: Mapping[str, Any], wanted: list[str]) -> bool:
    """All `wanted` targets present (the spec's AND); 3.1 targets are strings, 3.0 values maps."""
    have: set[str] = set()
    for t in obj.get("targets") or []:
        if isinstance(t, str):
            have.add(t)
        elif isinstance(t, dict):
            have.update(str(v) for v in t.get("values", []))
    return all(w in have for w in wanted)


class Vtn:
    """CRUD over the store with the roles and the spec's server-set fields."""

    def __init__(self, store: OpenAdrStore, *, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.writes = 0
        self.refusals = 0
        self.listeners: list[Listener] = []  # e.g. the subscription notifier (notifier.py)

    def _changed(self, kind: str, op: str, obj: dict[str, Any]) -> None:
        """Tell the listeners; one that raises is logged, never fails the write that is already stored."""
        for listener in self.listeners:
            try:
                listener(kind, op, obj)
            except Exception:
                log.exception("VTN listener failed on %s %s", op, kind)

    def _checked(self, kind: str, body: Any) -> dict[str, Any]:
        try:
            return _validated(kind, body)
        except VtnError:
            self.refusals += 1
            raise

    def _refuse(self, status: int, title: str, detail: str) -> VtnError:
        self.refusals += 1
        return VtnError(status, title, detail)

    def _may_write(self, client: Client, kind: str) -> None:
        if client.role == "bl" and kind != "reports":
            return
        if client.role == "ven" and kind in _VEN_OWNED:
            return
        raise self._refuse(403, "forbidden", f"a {client.role} client may not write {kind}")

    def _visible(self, client: Client, kind: str, obj: Mapping[str, Any]) -> bool:
        if client.role == "bl" or kind in _READ_ALL:
            return True
        return bool(obj.get("clientID") == client.client_id)

    def _references(self, client: Client, kind: str, obj: dict[str, Any]) -> None:
        """References exist: an event's programme, a report's event (whose programID it gets), a resource's VEN.

        A VEN client's resource must name a VEN of its own client.
        """
        if kind == "events" and self.store.get("programs", obj["programID"]) is None:
            raise self._refuse(400, "invalid object", f"event: programID: no program {obj['programID']!r}")
        if kind == "reports":
            event = self.store.get("events", obj["eventID"])
            if event is None:
                raise self._refuse(400, "invalid object", f"report: eventID: no event {obj['eventID']!r}")
            obj["programID"] = event["programID"]
        if (
            kind == "subscriptions"
            and "programID" in obj
            and self.store.get("programs", obj["programID"]) is None
        ):
            raise self._refuse(
                400, "invalid object", f"subscription: programID: no program {obj['programID']!r}"
            )
        if kind == "resources":
            ven = self.store.get("vens", obj["venID"])
            if ven is None or (client.role == "ven" and ven.get("clientID") != client.client_id):
                raise self._refuse(400, "invalid object", f"resource: venID: no VEN {obj['venID']!r}")

    def _unique_name(self, kind: str, obj: dict[str, Any], own_id: str | None) -> None:
        field = {"programs": "programName", "vens": "venName", "resources": "resourceName"}.get(kind)
        if field is None:
            return
        for other in self.store.all(kind):
            if kind == "resources" and other.get("venID") != obj["venID"]:
                continue  # a resource's name is unique per VEN
            if other[field] == obj[field] and other["id"] != own_id:
                raise self._refuse(
                    409, "conflict", f"{field} {obj[field]!r} exists already (id {other['id']})"
                )

    def create(self, client: Client, kind: str, body: Any) -> dict[str, Any]:
        """Validate, check references and names, set the server fields, store."""
        self._may_write(client, kind)
        obj = self._checked(kind, body)
        with self.store.write():  # the name check and the insert: one writer across controllers
            self._references(client, kind, obj)
            self._unique_name(kind, obj, None)
            now = _iso(self.clock.now())
            head: dict[str, Any] = {
                "id": str(uuid.uuid4()),
                "createdDateTime": now,
                "modificationDateTime": now,
            }
            head["objectType"] = OBJECT_TYPES[kind]
            if kind in _VEN_OWNED:
                given = body.get("clientID") if isinstance(body, dict) else None
                # a BL may register a VEN for a client; a VEN's objects always carry its own id
                head["clientID"] = (
                    given if client.role == "bl" and isinstance(given, str) and given else client.client_id
                )
            full = {**head, **obj}
            self.store.put(kind, full)
        self.writes += 1
        self._changed(kind, "create", full)
        return full

    def get(self, client: Client, kind: str, object_id: str) -> dict[str, Any]:
        """One object; 404 also for another VEN's object (its existence is not disclosed)."""
        obj = self.store.get(kind, object_id)
        if obj is None or not self._visible(client, kind, obj):
            raise self._refuse(404, "not found", f"no {OBJECT_TYPES[kind].lower()} {object_id!r}")
        return obj

    def update(self, client: Client, kind: str, object_id: str, body: Any) -> dict[str, Any]:
        """Replace the writable fields; `id`, `createdDateTime` and `clientID` stay."""
        self._may_write(client, kind)
        with self.store.write():  # read, name check, replace: one writer across controllers
            old = self.get(client, kind, object_id)
            obj = self._checked(kind, body)
            self._references(client, kind, obj)
            self._unique_name(kind, obj, object_id)
            keep: dict[str, Any] = {
                f: old[f] for f in ("id", "createdDateTime", "objectType", "clientID") if f in old
            }
            full: dict[str, Any] = {**keep, "modificationDateTime": _iso(self.clock.now()), **obj}
            self.store.put(kind, full)
        self.writes += 1
        self._changed(kind, "update", full)
        return full

    def delete(self, client: Client, kind: str, object_id: str) -> dict[str, Any]:
        """Remove it and answer it as it was (the client parses the deleted object)."""
        self._may_write(client, kind)
        with self.store.write():  # one writer across controllers
            old = self.get(client, kind, object_id)
            self.store.delete(kind, object_id)
        self.writes += 1
        self._changed(kind, "delete", old)
        return old

    def search(self, client: Client, kind: str, query: Mapping[str, str | list[str]]) -> list[dict[str, Any]]:
        """Filtered by programID, eventID, clientName, venName, venID, resourceName, targets (all of them); then skip/limit."""
        out = [o for o in self.store.all(kind) if self._visible(client, kind, o)]
        for key in ("programID", "eventID", "clientName", "venName", "venID", "resourceName"):
            value = query.get(key)
            if isinstance(value, str):
                out = [o for o in out if o.get(key) == value]
        targets = query.get("targets")
        if targets:
            wanted = [targets] if isinstance(targets, str) else list(targets)
            out = [o for o in out if _has_targets(o, wanted)]
        try:
            skip, limit = _int_param(query, "skip", 0), _int_param(query, "limit", 50)
        except VtnError:
            self.refusals += 1
            raise
        return out[skip : skip + limit]


def _int_param(query: Mapping[str, str | list[str]], key: str, default: int) -> int:
    raw = query.get(key)
    if raw is None:
        return default
    if not isinstance(raw, str) or not raw.isdigit():
        raise VtnError(400, "invalid query", f"{key}: a non-negative integer, not {raw!r}")
    n = int(raw)
    if key == "limit" and not 1 <= n <= 50:
        raise VtnError(400, "invalid query", f"limit: 1-50 (the spec's maximum page), not {n}")
    return n
