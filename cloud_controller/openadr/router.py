"""The VTN's HTTP interface (FastAPI router under `/openadr3`): OAuth2 token, discovery, CRUD.

What the ElaadNL clients call (docs/openadr.md): `GET /auth/server` (token URL discovery,
3.1), `POST /token` (form `grant_type=client_credentials`, credentials as HTTP Basic), and
`GET|POST /{kind}`, `GET|PUT|DELETE /{kind}/{id}` for programs, events, reports,
subscriptions and vens, bearer token on each. Problems come back as the spec's `problem`
JSON; token errors as RFC 6749 `{error, error_description}`.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from cloud_controller.openadr.oauth import Client, OAuthClients, OAuthError, load_or_create_clients
from cloud_controller.openadr.resources import KINDS, Vtn, VtnError
from cloud_controller.openadr.store import OpenAdrStore
from cloud_controller.store.records import records_of

if TYPE_CHECKING:
    from cloud_controller.config import CloudConfig
    from protocols.clock import Clock

__all__ = ["PREFIX", "build_vtn", "openadr_router", "store_path_of"]

PREFIX = "/openadr3"
_NO_STORE = {"Cache-Control": "no-store"}


def build_vtn(config: CloudConfig, clock: Clock) -> tuple[Vtn, OAuthClients]:
    """The VTN and its OAuth clients from `openadr.*` (files beside the controller's store by default)."""
    oa = config.openadr
    store = OpenAdrStore(records_of(config, "openadr", store_path_of(config)))
    clients = load_or_create_clients(oa.credentials_file or config.store.path.parent / "openadr-clients.yaml")
    return Vtn(store, clock=clock), OAuthClients(clients, clock=clock, ttl_s=oa.token_ttl_s)


def _problem(exc: VtnError) -> JSONResponse:
    return JSONResponse(exc.problem, status_code=exc.status)


def _oauth_problem(exc: OAuthError) -> JSONResponse:
    headers = {
        **_NO_STORE,
        **({"WWW-Authenticate": 'Bearer realm="gridflex-vtn"'} if exc.status == 401 else {}),
    }
    body = {"error": exc.error, "error_description": exc.description}
    return JSONResponse(body, status_code=exc.status, headers=headers)


async def _handle(
    vtn: Vtn, oauth: OAuthClients, request: Request, op: str, kind: str, object_id: str | None
) -> JSONResponse:
    """Authenticate, parse, run one VTN operation in a worker thread (SQLite), answer JSON or a problem."""
    if kind not in KINDS:
        return JSONResponse({"title": "not found", "status": 404, "detail": f"no resource {kind!r}"}, 404)
    try:
        client: Client = oauth.check(request.headers.get("authorization"))
    except OAuthError as exc:
        return _oauth_problem(exc)
    body: Any = None
    if op in ("create", "update"):
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return JSONResponse({"title": "invalid JSON", "status": 400, "detail": str(exc)}, 400)
    try:
        if op == "search":
            query: dict[str, str | list[str]] = {
                k: (v if k == "targets" else v[0]) for k, v in parse_qs(request.url.query).items()
            }
            return JSONResponse(await asyncio.to_thread(vtn.search, client, kind, query))
        if op == "create":
            return JSONResponse(await asyncio.to_thread(vtn.create, client, kind, body), status_code=201)
        oid = str(object_id)
        if op == "get":
            return JSONResponse(await asyncio.to_thread(vtn.get, client, kind, oid))
        if op == "update":
            return JSONResponse(await asyncio.to_thread(vtn.update, client, kind, oid, body))
        return JSONResponse(await asyncio.to_thread(vtn.delete, client, kind, oid))
    except VtnError as exc:
        return _problem(exc)


def openadr_router(vtn: Vtn, oauth: OAuthClients) -> APIRouter:
    """Every route of the VTN; `vtn` and `oauth` are built by `build_vtn` (or a test)."""
    router = APIRouter(prefix=PREFIX, tags=["openadr3"])

    @router.get("/auth/server")
    def auth_server(request: Request) -> dict[str, Any]:
        """Token URL discovery (OpenADR 3.1): where client credentials are exchanged for a token."""
        return {"tokenURL": str(request.url_for("oa3_token"))}

    @router.post("/token", name="oa3_token")
    async def token(request: Request) -> JSONResponse:
        """OAuth2 client credentials grant (RFC 6749 §4.4), form-encoded body."""
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        try:
            access = oauth.issue(request.headers.get("authorization"), form)
        except OAuthError as exc:
            return _oauth_problem(exc)
        body = {"access_token": access, "token_type": "Bearer", "expires_in": oauth.ttl_s}
        return JSONResponse(body, headers=_NO_STORE)

    async def _call(request: Request, op: str, kind: str, object_id: str | None = None) -> JSONResponse:
        return await _handle(vtn, oauth, request, op, kind, object_id)

    @router.get("/{kind}")
    async def search(request: Request, kind: str) -> JSONResponse:
        """Objects of a kind the caller may see: `programID`, `eventID`, `clientName`, `targets`, `skip`, `limit`."""
        return await _call(request, "search", kind)

    @router.post("/{kind}")
    async def create(request: Request, kind: str) -> JSONResponse:
        """201 with the object as stored: server-set `id`, `createdDateTime`, `modificationDateTime`, `clientID`."""
        return await _call(request, "create", kind)

    @router.get("/{kind}/{object_id}")
    async def read(request: Request, kind: str, object_id: str) -> JSONResponse:
        return await _call(request, "get", kind, object_id)

    @router.put("/{kind}/{object_id}")
    async def update(request: Request, kind: str, object_id: str) -> JSONResponse:
        return await _call(request, "update", kind, object_id)

    @router.delete("/{kind}/{object_id}")
    async def delete(request: Request, kind: str, object_id: str) -> JSONResponse:
        """Removes the object and answers it as it was."""
        return await _call(request, "delete", kind, object_id)

    return router


def store_path_of(config: CloudConfig) -> Path:
    """Where the VTN's SQLite file is (for a restart test or an operator's backup)."""
    return config.openadr.store_path or config.store.path.parent / "openadr.sqlite"
