"""`gridflex bench uftp`: one UFTP round trip on loopback against a bare HTTP POST, in the same run.

Two GridFlex UFTP nodes, each its own uvicorn server on loopback in this process: a DSO
(`dso.test`) and an AGR (`agr.test`) with freshly generated keys. One round trip is a
FlexRequest signed, POSTed and verified at the AGR, whose handler answers with a signed
FlexRequestResponse POSTed back to the DSO's endpoint, timed until the DSO's handler
has it (UFTP's replies are new messages, not HTTP responses: two POSTs, two signatures,
two verifications, four XML passes). The anchor is a bare `POST` of the same number of
bytes to a route that only answers 200, on the same server and client. Figures: p50 and
p99 of each, ms.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import time
from dataclasses import dataclass

import httpx
import uvicorn
from fastapi import FastAPI, Request, Response

from cloud_controller.market.uftp import (
    FlexRequest,
    FlexRequestIsp,
    FlexRequestResponse,
    PayloadMessage,
    SigningKey,
    UftpConfig,
    UftpNode,
    UftpPeer,
    encode,
    uftp_router,
)
from protocols.clock import RealClock

__all__ = ["UftpFigures", "uftp_figures"]


@dataclass(frozen=True)
class UftpFigures:
    """Round-trip times on loopback, ms."""

    n: int
    uftp_p50_ms: float
    uftp_p99_ms: float
    post_p50_ms: float
    post_p99_ms: float
    request_bytes: int


def _p(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]
        if len(values) > 1
        else values[0]
    )


async def _serve(app: FastAPI) -> tuple[str, asyncio.Task[None], uvicorn.Server]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:  # noqa: ASYNC110  (uvicorn offers no started event)
            await asyncio.sleep(0.01)
    return f"http://127.0.0.1:{port}", task, server


def _request(node: UftpNode, peer: UftpPeer) -> FlexRequest:
    return FlexRequest(
        **node.header(peer),
        period="2026-12-03",
        congestion_point="ea1.2026-12.dso.test:station-7",
        revision=1,
        expiration_date_time="2026-12-03T15:00:00+00:00",
        isps=[
            FlexRequestIsp(disposition="Requested", min_power_w=-20000, max_power_w=0, start=n)
            for n in range(69, 77)
        ],
    )


async def _run(n: int) -> UftpFigures:
    dso_key, agr_key = SigningKey.generate(), SigningKey.generate()
    dso_app, agr_app = FastAPI(), FastAPI()

    @dso_app.post("/bare")
    async def bare(request: Request) -> Response:
        await request.body()
        return Response(status_code=200)

    dso_url, dso_task, dso_server = await _serve(dso_app)
    agr_url, agr_task, agr_server = await _serve(agr_app)
    clock = RealClock()
    agr_peer = UftpPeer(
        domain="agr.test",
        role="AGR",
        endpoint=f"{agr_url}/uftp/agr",
        public_key=agr_key.public_b64,
        fsp="agr",
    )
    dso_peer = UftpPeer(
        domain="dso.test",
        role="DSO",
        endpoint=f"{dso_url}/uftp/dso",
        public_key=dso_key.public_b64,
        program="p",
    )
    dso = UftpNode(
        UftpConfig(enabled=True, roles=["DSO"], domain="dso.test", peers=[agr_peer]), dso_key, clock=clock
    )
    agr = UftpNode(
        UftpConfig(enabled=True, roles=["AGR"], domain="agr.test", peers=[dso_peer]), agr_key, clock=clock
    )
    dso_app.include_router(uftp_router(dso))
    agr_app.include_router(uftp_router(agr))
    waiting: dict[str, asyncio.Future[None]] = {}

    async def agr_handler(msg: PayloadMessage, peer: UftpPeer) -> None:
        await agr.send(
            peer,
            FlexRequestResponse(
                **agr.header(peer, msg.conversation_id), flex_request_message_id=msg.message_id
            ),
        )

    async def dso_handler(msg: PayloadMessage, peer: UftpPeer) -> None:
        assert isinstance(msg, FlexRequestResponse)
        waiting[msg.flex_request_message_id].set_result(None)

    agr.handlers["AGR"], dso.handlers["DSO"] = agr_handler, dso_handler
    uftp_ms: list[float] = []
    post_ms: list[float] = []
    size = len(encode(_request(dso, agr_peer)))
    try:
        async with httpx.AsyncClient(timeout=10) as bare_client:
            for k in range(n + 10):  # the first 10 warm both paths up
                msg = _request(dso, agr_peer)
                reply = waiting[msg.message_id] = asyncio.get_running_loop().create_future()
                t0 = time.perf_counter()
                await dso.send(agr_peer, msg)
                try:
                    await asyncio.wait_for(reply, 10)
                except TimeoutError:
                    raise RuntimeError(f"no reply: {agr.status()} {dso.status()}") from None
                del waiting[msg.message_id]
                t1 = time.perf_counter()
                r = await bare_client.post(f"{dso_url}/bare", content=b"x" * size)
                t2 = time.perf_counter()
                r.raise_for_status()
                if k >= 10:
                    uftp_ms.append((t1 - t0) * 1e3)
                    post_ms.append((t2 - t1) * 1e3)
    finally:
        await dso.aclose()
        await agr.aclose()
        for server, task in ((dso_server, dso_task), (agr_server, agr_task)):
            server.should_exit = True
            await asyncio.wait_for(task, 10)
    if agr.stats.handler_errors or dso.stats.handler_errors:
        raise RuntimeError(f"UFTP handler failures: {list(agr.failures) + list(dso.failures)}")
    return UftpFigures(n, _p(uftp_ms, 0.5), _p(uftp_ms, 0.99), _p(post_ms, 0.5), _p(post_ms, 0.99), size)


def uftp_figures(n: int = 500) -> UftpFigures:
    """`n` timed UFTP round trips and as many bare POSTs (after 10 of each to warm up)."""
    return asyncio.run(_run(n))
