"""GridFlex's UFTP endpoint refuses what it must, with the status and reason, and counts each refusal."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, date, datetime

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from cloud_controller.market.uftp.codec import XmlError, decode, encode
from cloud_controller.market.uftp.config import UftpConfig, UftpPeer
from cloud_controller.market.uftp.config import UftpPeer as _Peer
from cloud_controller.market.uftp.envelope import SigningKey, seal
from cloud_controller.market.uftp.isp import by_period, isp_start
from cloud_controller.market.uftp.messages import (
    FlexOfferResponse,
    FlexOrderResponse,
    FlexRequestResponse,
    PayloadMessage,
)
from cloud_controller.market.uftp.node import UftpNode, UftpSendError
from cloud_controller.market.uftp.router import uftp_router
from protocols.clock import SimClock

UUID = "11111111-2222-4333-8444-555555555555"


def _resp(sender: str = "agr.test", recipient: str = "gridflex.test") -> FlexRequestResponse:
    return FlexRequestResponse(
        sender_domain=sender,
        recipient_domain=recipient,
        time_stamp="2026-12-03T08:00:00+00:00",
        message_id=UUID,
        conversation_id=UUID,
        flex_request_message_id=UUID,
    )


@pytest.fixture
def agr_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def got() -> list[PayloadMessage]:
    return []


@pytest.fixture
def node(agr_key: SigningKey, got: list[PayloadMessage]) -> UftpNode:
    peer = UftpPeer(
        domain="agr.test",
        role="AGR",
        endpoint="http://127.0.0.1:1/x",
        public_key=agr_key.public_b64,
        fsp="agr1",
    )
    cfg = UftpConfig(enabled=True, roles=["DSO"], peers=[peer])
    n = UftpNode(cfg, SigningKey.generate(), clock=SimClock(datetime(2026, 12, 3, 8, tzinfo=UTC)))

    async def handler(msg: PayloadMessage, peer: _Peer) -> None:
        got.append(msg)

    n.handlers["DSO"] = handler
    return n


async def _post(node: UftpNode, path: str, body: bytes) -> httpx.Response:
    app = FastAPI()
    app.include_router(uftp_router(node))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        return await c.post(path, content=body)


async def test_a_signed_message_from_the_configured_agr_is_taken_and_handled(
    got: list[PayloadMessage], node: UftpNode, agr_key: SigningKey
) -> None:
    r = await _post(node, "/uftp/dso", seal(encode(_resp()), agr_key, "agr.test", "AGR"))
    assert (r.status_code, r.content) == (200, b"")
    await node.idle()
    assert got == [_resp()]
    assert node.stats.received == 1 and not node.stats.refused


@pytest.mark.parametrize(
    ("case", "status", "kind"),
    [
        ("unknown_sender", 403, "unknown_sender"),
        ("wrong_key", 401, "bad_signature"),
        ("tampered", 401, "bad_signature"),
        ("inner_sender", 403, "sender_mismatch"),
        ("not_for_us", 403, "recipient"),
        ("misdirected", 400, "misdirected"),
        ("dso_to_dso", 403, "sender_role"),
        ("doctype", 400, "envelope"),
        ("schema", 400, "schema"),
    ],
    ids=str,
)
async def test_bad_messages_are_refused_with_status_and_reason_and_counted(
    node: UftpNode, agr_key: SigningKey, got: list[PayloadMessage], case: str, status: int, kind: str
) -> None:
    good = encode(_resp())
    bodies: dict[str, Callable[[], bytes]] = {
        "unknown_sender": lambda: seal(good, agr_key, "other.test", "AGR"),
        "wrong_key": lambda: seal(good, SigningKey.generate(), "agr.test", "AGR"),
        "tampered": lambda: _tamper(seal(good, agr_key, "agr.test", "AGR")),
        "inner_sender": lambda: seal(encode(_resp(sender="evil.test")), agr_key, "agr.test", "AGR"),
        "not_for_us": lambda: seal(encode(_resp(recipient="other.test")), agr_key, "agr.test", "AGR"),
        "misdirected": lambda: seal(
            encode(
                FlexOfferResponse(
                    sender_domain="agr.test",
                    time_stamp="2026-12-03T08:00:00Z",
                    message_id=UUID,
                    conversation_id=UUID,
                    flex_offer_message_id=UUID,
                )
            ),
            agr_key,
            "agr.test",
            "AGR",
        ),
        "dso_to_dso": lambda: seal(good, agr_key, "agr.test", "DSO"),
        "doctype": lambda: b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><SignedMessage/>',
        "schema": lambda: seal(
            good.replace(b'MessageID="1111', b'MessageID="zzzz', 1), agr_key, "agr.test", "AGR"
        ),
    }
    r = await _post(node, "/uftp/dso", bodies[case]())
    assert r.status_code == status, r.text
    assert r.json()["kind"] == kind and r.json()["reason"]
    assert node.stats.refused == {kind: 1}
    assert node.stats.received == 0 and got == []


def _tamper(signed: bytes) -> bytes:
    start = signed.index(b'Body="') + 6
    end = signed.index(b'"', start)
    raw = bytearray(base64.b64decode(signed[start:end]))
    raw[-20] ^= 1  # one bit of the inner XML
    return signed[:start] + base64.b64encode(bytes(raw)) + signed[end:]


async def test_a_role_gridflex_does_not_play_answers_404(node: UftpNode, agr_key: SigningKey) -> None:
    r = await _post(node, "/uftp/agr", seal(encode(_resp()), agr_key, "dso.test", "DSO"))
    assert r.status_code == 404 and r.json()["kind"] == "role"


async def test_a_failing_handler_is_counted_and_kept_with_its_reason(
    node: UftpNode, agr_key: SigningKey
) -> None:
    async def broken(msg: PayloadMessage, peer: _Peer) -> None:
        raise RuntimeError("book is closed")

    node.handlers["DSO"] = broken
    r = await _post(node, "/uftp/dso", seal(encode(_resp()), agr_key, "agr.test", "AGR"))
    assert r.status_code == 200
    await node.idle()
    assert node.stats.handler_errors == 1
    assert "book is closed" in node.failures[0]["reason"]


def test_decoder_names_the_attribute_and_the_unknown_element() -> None:
    good = encode(_resp())
    with pytest.raises(XmlError, match="unknown attribute 'Colour'"):
        decode(good.replace(b"<FlexRequestResponse ", b'<FlexRequestResponse Colour="red" '))
    with pytest.raises(XmlError, match="is not a message GridFlex takes"):
        decode(b"<TestMessage/>")
    with pytest.raises(XmlError, match="not well-formed"):
        decode(b"<FlexRequestResponse")


def test_isp_numbers_follow_the_local_day_across_dst() -> None:
    # 2026-10-25, Europe/Amsterdam: 25 h, 100 ISPs; ISP 1 starts at 22:00 UTC the day before
    day = date(2026, 10, 25)
    assert isp_start(day, 1, "Europe/Amsterdam") == datetime(2026, 10, 24, 22, tzinfo=UTC)
    assert isp_start(day, 100, "Europe/Amsterdam") == datetime(2026, 10, 25, 22, 45, tzinfo=UTC)
    with pytest.raises(ValueError, match="ISP 101"):
        isp_start(day, 101, "Europe/Amsterdam")
    # 17:00 UTC on 3 Dec is 18:00 local: ISP 73
    assert by_period([datetime(2026, 12, 3, 17, tzinfo=UTC)], "Europe/Amsterdam") == {
        date(2026, 12, 3): [(73, datetime(2026, 12, 3, 17, tzinfo=UTC))]
    }


async def test_a_body_over_the_limit_is_refused_before_it_is_read_whole(node: UftpNode) -> None:
    r = await _post(node, "/uftp/dso", b"<" * (2 * 1024 * 1024 + 1))
    assert r.status_code == 413 and r.json()["kind"] == "size"


def test_a_period_that_is_no_date_and_an_unknown_time_zone_are_schema_errors() -> None:
    xml = encode(
        FlexOrderResponse(
            sender_domain="agr.test",
            time_stamp="2026-12-03T08:00:00Z",
            message_id=UUID,
            conversation_id=UUID,
            flex_order_message_id=UUID,
        )
    )
    assert decode(xml).TAG == "FlexOrderResponse"
    offer = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<FlexOffer Version="3.1.0" SenderDomain="agr.test" '
        b'TimeStamp="2026-12-03T08:00:00Z" MessageID="'
        + UUID.encode()
        + b'" ConversationID="'
        + UUID.encode()
        + b'" '
        b'ISP-Duration="PT15M" TimeZone="Europe/Atlantis" Period="2026-02-30" '
        b'CongestionPoint="ean.123456789012" ExpirationDateTime="2026-12-03T15:00:00Z" Unsolicited="true">'
        b'<OfferOption OptionReference="o" Price="1"><ISP Power="-1" Start="1"/></OfferOption></FlexOffer>'
    )
    with pytest.raises(XmlError, match="unknown time zone 'Europe/Atlantis'"):
        decode(offer)
    with pytest.raises(XmlError, match="period: Value error, day is out of range"):
        decode(offer.replace(b"Europe/Atlantis", b"Europe/Amsterdam"))
    assert (
        decode(
            offer.replace(b"Europe/Atlantis", b"Europe/Amsterdam").replace(b"2026-02-30", b"2026-02-28")
        ).TAG
        == "FlexOffer"
    )


@pytest.mark.parametrize(
    ("answers", "delivered", "posts", "retries"),
    [([503, 503, 200], True, 3, 2), ([403], False, 1, 0), ([500, 500, 500], False, 3, 2)],
    ids=["503-twice-then-taken", "403-not-repeated", "500-gives-up-after-3"],
)
async def test_a_send_is_tried_again_only_when_the_peer_could_not_answer(
    answers: list[int], delivered: bool, posts: int, retries: int
) -> None:
    seen: list[bytes] = []
    peer_app = FastAPI()

    @peer_app.post("/m")
    async def m(request: Request) -> Response:
        seen.append(await request.body())
        return Response(status_code=answers[len(seen) - 1])

    peer = UftpPeer(
        domain="agr.test",
        role="AGR",
        endpoint="http://agr/m",
        public_key=SigningKey.generate().public_b64,
        fsp="a",
    )
    n = UftpNode(
        UftpConfig(enabled=True, roles=["DSO"], peers=[peer]),
        SigningKey.generate(),
        clock=SimClock(datetime(2026, 12, 3, 8, tzinfo=UTC), speed=1000.0),  # backoff sleeps ms
        client=httpx.AsyncClient(transport=httpx.ASGITransport(app=peer_app)),
    )
    try:
        if delivered:
            await n.send(peer, _resp())
        else:
            with pytest.raises(UftpSendError, match=f"attempt {posts}\\): HTTP {answers[-1]}"):
                await n.send(peer, _resp())
    finally:
        await n.aclose()
    assert len(seen) == posts and len(set(seen)) == 1  # the same signed bytes each time
    assert (n.stats.sent, n.stats.send_failed, n.stats.retries) == (
        int(delivered),
        int(not delivered),
        retries,
    )
