"""One of our UFTP messages in flight per peer endpoint, and a peer's 4xx kept with the XML we signed.

Why: shapeshifter-uftp 2.4.0's service cannot parse two messages at once safely (its
xsdata root-type index is rebuilt, empty for a moment, when `sys.modules` grew; the parse
that looks then answers HTTP 400). `send` therefore waits for a peer's answer before the
next POST to it; two different peers still get theirs concurrently.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import httpx
import pytest

from cloud_controller.market.uftp.config import UftpConfig, UftpPeer
from cloud_controller.market.uftp.envelope import SigningKey
from cloud_controller.market.uftp.messages import FlexOfferResponse
from cloud_controller.market.uftp.node import UftpNode, UftpSendError
from protocols.clock import SimClock

UUID = "11111111-2222-4333-8444-555555555555"


def _peer(n: int) -> UftpPeer:
    return UftpPeer(
        domain=f"agr{n}.test",
        role="AGR",
        endpoint=f"http://127.0.0.1:1/agr{n}",
        public_key=SigningKey.generate().public_b64,
        fsp=f"agr{n}",
    )


def _msg(peer: UftpPeer, i: int) -> FlexOfferResponse:
    return FlexOfferResponse(
        sender_domain="gridflex.test",
        recipient_domain=peer.domain,
        time_stamp="2026-12-03T08:00:00+00:00",
        message_id=f"11111111-2222-4333-8444-{i:012d}",
        conversation_id=UUID,
        flex_offer_message_id=UUID,
    )


class Endpoint:
    """A peer that takes a while to answer and records how many POSTs it holds at once, per path."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.now: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.most_overall = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.now[path] = self.now.get(path, 0) + 1
        self.most[path] = max(self.most.get(path, 0), self.now[path])
        self.most_overall = max(self.most_overall, sum(self.now.values()))
        await asyncio.sleep(0.01)
        self.now[path] -= 1
        return httpx.Response(self.status, text="" if self.status == 200 else '{"detail":"Bad Request"}')


def _node(endpoint: Endpoint, peers: list[UftpPeer]) -> UftpNode:
    cfg = UftpConfig(enabled=True, roles=["DSO"], peers=peers)
    client = httpx.AsyncClient(transport=httpx.MockTransport(endpoint))
    return UftpNode(
        cfg, SigningKey.generate(), clock=SimClock(datetime(2026, 12, 3, 8, tzinfo=UTC)), client=client
    )


async def test_five_messages_to_one_peer_are_posted_one_at_a_time() -> None:
    peer = _peer(1)
    endpoint = Endpoint()
    node = _node(endpoint, [peer])
    await asyncio.gather(*(node.send(peer, _msg(peer, i)) for i in range(5)))
    await node.aclose()
    assert (node.stats.sent, endpoint.most) == (5, {"/agr1": 1})


async def test_two_peers_are_posted_to_concurrently() -> None:
    a, b = _peer(1), _peer(2)
    endpoint = Endpoint()
    node = _node(endpoint, [a, b])
    await asyncio.gather(*(node.send(p, _msg(p, i)) for i, p in enumerate([a, b, a, b])))
    await node.aclose()
    assert endpoint.most == {"/agr1": 1, "/agr2": 1}
    assert endpoint.most_overall == 2


async def test_a_peers_400_is_logged_and_kept_with_the_xml_we_signed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    peer = _peer(1)
    node = _node(Endpoint(status=400), [peer])
    with caplog.at_level(logging.WARNING, "cloud_controller.market.uftp.node"), pytest.raises(UftpSendError):
        await node.send(peer, _msg(peer, 7))
    await node.aclose()
    [failure] = node.failures
    assert failure["message"] == "FlexOfferResponse"
    assert failure["reason"] == 'HTTP 400 {"detail":"Bad Request"}'
    assert failure["xml"].startswith('<?xml version="1.0" encoding="UTF-8"?>\n<FlexOfferResponse ')
    assert 'MessageID="11111111-2222-4333-8444-000000000007"' in failure["xml"]
    assert "the XML we signed" in caplog.text and "000000000007" in caplog.text
    assert (node.stats.send_failed, node.stats.retries) == (1, 0)  # a 400 is a verdict: not repeated
