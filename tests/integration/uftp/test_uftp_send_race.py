"""30 of our messages at once to shapeshifter-uftp's AGR service while it imports modules: all taken.

The service behind the one CI HTTP 400: the library's AGR (another process, loopback), with
a module imported every millisecond inside it (`churn_modules`: what its lazy imports do
now and then), so its xsdata root-type index is rebuilt on every parse. Our node sends 30
valid FlexOfferResponses concurrently; one message in flight per endpoint means the
library parses one at a time, and all 30 get HTTP 200 and reach its handler. Without that
lock (the slow test posts the same sealed bodies concurrently itself) the library answers
some of them 400: its parser race, docs/market.md.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest

from cloud_controller.market.uftp.codec import encode
from cloud_controller.market.uftp.config import UftpConfig, UftpPeer
from cloud_controller.market.uftp.envelope import SigningKey, seal
from cloud_controller.market.uftp.messages import FlexOfferResponse
from cloud_controller.market.uftp.node import UftpNode
from protocols.clock import SimClock
from tests.integration.uftp.party import Party, uftp_python

pytestmark = pytest.mark.integration

N = 30


def _responses() -> list[FlexOfferResponse]:
    return [
        FlexOfferResponse(
            sender_domain="gridflex.test",
            recipient_domain="agr.test",
            time_stamp="2026-12-03T08:00:00+00:00",
            message_id=f"11111111-2222-4333-8444-{i:012d}",
            conversation_id="66666666-7777-4888-9999-aaaaaaaaaaaa",
            flex_offer_message_id="66666666-7777-4888-9999-aaaaaaaaaaaa",
        )
        for i in range(N)
    ]


def _party(ours: SigningKey, theirs: SigningKey) -> Party:
    return Party(
        {
            "mode": "agr",
            "domain": "agr.test",
            "private_key": theirs.private_b64,
            "peer": {
                "domain": "gridflex.test",
                "public_key": ours.public_b64,
                "endpoint": "http://127.0.0.1:9/none",
            },
            "price_eur": 1.0,
            "churn_modules": True,
        }
    )


async def test_thirty_concurrent_sends_to_the_librarys_service_are_all_taken() -> None:
    uftp_python()
    ours, theirs = SigningKey.generate(), SigningKey.generate()
    party = _party(ours, theirs)
    peer = UftpPeer(
        domain="agr.test", role="AGR", endpoint=party.endpoint, public_key=theirs.public_b64, fsp="a"
    )
    node = UftpNode(
        UftpConfig(enabled=True, roles=["DSO"], peers=[peer]),
        ours,
        clock=SimClock(datetime(2026, 12, 3, 8, tzinfo=UTC)),
    )
    await party.start()
    try:
        results = await asyncio.gather(*(node.send(peer, m) for m in _responses()), return_exceptions=True)
        await node.aclose()
        got = await party.finish()
    finally:
        party.kill()
    assert [r for r in results if r is not None] == [], list(node.failures)
    assert node.stats.sent == N
    assert sorted(m["message_id"] for m in got["received"]) == sorted(m.message_id for m in _responses())
    assert not [line for line in got["library_log"] if "does not conform" in line]


@pytest.mark.slow
async def test_without_one_in_flight_the_librarys_service_refuses_some_valid_messages() -> None:
    """The library's defect at its service (not ours): if this stops failing, the library was fixed."""
    uftp_python()
    ours, theirs = SigningKey.generate(), SigningKey.generate()
    party = _party(ours, theirs)
    bodies = [seal(encode(m), ours, "gridflex.test", "DSO") for m in _responses()]
    await party.start()
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            statuses: list[int] = []
            for _ in range(10):  # rounds of 30 at once, until the race shows
                answers = await asyncio.gather(*(http.post(party.endpoint, content=b) for b in bodies))
                statuses += [a.status_code for a in answers]
                if 400 in statuses:
                    break
        got = await party.finish()
    finally:
        party.kill()
    assert 400 in statuses
    assert any("No class found matching root" in line for line in got["library_log"])
