"""The UFTP endpoints the controller mounts: one message endpoint per role, plus status and key.

`POST /uftp/dso` takes AGRs' messages to GridFlex as DSO, `POST /uftp/agr` DSOs' messages
to GridFlex as AGR (the spec's single `/shapeshifter/api/v3/message` per participant,
split by role because GridFlex plays both). Authentication is the SignedMessage's
signature under the configured peer key, not an API token. 200 with an empty body when
taken (the reply comes later, as its own message); otherwise 400/401/403/404 with
`{"kind", "reason"}`. (`POST /uftp/metering/{day}`, an operator's, is `metering_api.py`.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from cloud_controller.market.uftp.codec import MAX_XML_BYTES
from cloud_controller.market.uftp.messages import Role
from cloud_controller.market.uftp.node import UftpNode

__all__ = ["uftp_router"]


def uftp_router(node: UftpNode, *, read: Sequence[Any] = ()) -> APIRouter:
    """The routes of `node` (its handlers decide what a taken message does).

    `read`: dependencies guarding `/uftp/status` (the controller's viewer role: it names
    peers and failures); the message endpoints are guarded by the signature, the key is public.
    """
    router = APIRouter(prefix="/uftp", tags=["uftp"])

    async def _take(role: Role, request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():  # bounded: a peer cannot make us hold a huge body
            body += chunk
            if len(body) > 2 * MAX_XML_BYTES:
                reason = f"body over {2 * MAX_XML_BYTES} bytes"
                return JSONResponse({"kind": "size", "reason": reason}, status_code=413)
        refusal = await node.receive(role, bytes(body))
        if refusal is None:
            return Response(status_code=200)
        return JSONResponse({"kind": refusal.kind, "reason": refusal.reason}, status_code=refusal.status)

    @router.post("/dso")
    async def to_our_dso(request: Request) -> Response:
        """A SignedMessage from an AGR to GridFlex as DSO."""
        return await _take("DSO", request)

    @router.post("/agr")
    async def to_our_agr(request: Request) -> Response:
        """A SignedMessage from a DSO to GridFlex as AGR."""
        return await _take("AGR", request)

    @router.get("/status", dependencies=list(read))
    async def uftp_status() -> dict[str, Any]:
        """Counters: received, sent, refused by kind, handler failures with reasons."""
        return node.status()

    @router.get("/key")
    async def uftp_key() -> dict[str, str]:
        """Our Ed25519 public key (base64), for the peers' key lookup."""
        return {"domain": node.config.domain, "public_key": node.key.public_b64}

    return router
