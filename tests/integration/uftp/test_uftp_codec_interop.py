"""GridFlex's UFTP XML (14 messages) and SignedMessage against shapeshifter-uftp 2.4.0's own, both ways, byte for byte.

One run of the library (`uftp_party.py codec`, its venv) parses every message GridFlex
encodes and renders it again — the bytes must be GridFlex's — renders its own message of
each kind, which GridFlex decodes and re-encodes to the same bytes, opens GridFlex's
SignedMessage with GridFlex's public key, and seals one of its own for GridFlex to open.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from cloud_controller.market.uftp.codec import decode, encode
from cloud_controller.market.uftp.envelope import SigningKey, open_envelope, parse_envelope, seal, verify_key
from cloud_controller.market.uftp.messages import (
    ContractSettlement,
    ContractSettlementIsp,
    ContractSettlementPeriod,
    FlexOffer,
    FlexOfferOption,
    FlexOfferOptionIsp,
    FlexOfferResponse,
    FlexOfferRevocation,
    FlexOfferRevocationResponse,
    FlexOrder,
    FlexOrderIsp,
    FlexOrderResponse,
    FlexOrderSettlement,
    FlexOrderSettlementIsp,
    FlexOrderSettlementStatus,
    FlexRequest,
    FlexRequestIsp,
    FlexRequestResponse,
    FlexSettlement,
    FlexSettlementResponse,
    PayloadMessage,
)
from cloud_controller.market.uftp.prognosis_messages import (
    DPrognosis,
    DPrognosisIsp,
    DPrognosisResponse,
    FlexOrderStatus,
    Metering,
    MeteringIsp,
    MeteringProfile,
    MeteringResponse,
)
from tests.integration.uftp.party import run_once

pytestmark = pytest.mark.integration

UUID1 = "11111111-2222-4333-8444-555555555555"
UUID2 = "66666666-7777-4888-9999-aaaaaaaaaaaa"
CP = "ea1.2026-12.gridflex.test:station-7"


def _h(sender: str) -> dict[str, str]:
    return {
        "sender_domain": sender,
        "recipient_domain": "gridflex.test",
        "time_stamp": "2026-12-03T08:00:00+00:00",
        "message_id": UUID1,
        "conversation_id": UUID2,
    }


def ours() -> list[PayloadMessage]:
    """The library party's `library_samples()`, built with GridFlex's models."""
    flex = {"period": "2026-12-03", "congestion_point": CP}
    return [
        FlexRequest(
            **_h("dso.test"),
            **flex,
            revision=2,
            expiration_date_time="2026-12-03T15:00:00+00:00",
            isps=[
                FlexRequestIsp(
                    disposition="Requested", min_power_w=-20000, max_power_w=0, start=69, duration=2
                )
            ],
        ),
        FlexRequestResponse(**_h("agr.test"), flex_request_message_id=UUID1),
        FlexOffer(
            **_h("agr.test"),
            **flex,
            expiration_date_time="2026-12-03T15:00:00+00:00",
            flex_request_message_id=UUID1,
            offer_options=[
                FlexOfferOption(
                    option_reference="opt-1",
                    price=Decimal("12.5"),
                    min_activation_factor=Decimal("0.5"),
                    isps=[FlexOfferOptionIsp(power_w=-15000, start=69, duration=2)],
                )
            ],
        ),
        FlexOfferResponse(
            **_h("dso.test"), result="Rejected", rejection_reason="too late", flex_offer_message_id=UUID1
        ),
        FlexOfferRevocation(**_h("agr.test"), flex_offer_message_id=UUID1),
        FlexOfferRevocationResponse(**_h("dso.test"), flex_offer_revocation_message_id=UUID1),
        FlexOrder(
            **_h("dso.test"),
            **flex,
            flex_offer_message_id=UUID1,
            price=Decimal("6.25"),
            order_reference="ord-1",
            option_reference="opt-1",
            activation_factor=Decimal("0.5"),
            isps=[FlexOrderIsp(power_w=-15000, start=69, duration=2)],
        ),
        FlexOrderResponse(**_h("agr.test"), flex_order_message_id=UUID1),
        FlexSettlement(
            **_h("dso.test"),
            period_start="2026-12-01",
            period_end="2026-12-31",
            flex_order_settlements=[
                FlexOrderSettlement(
                    order_reference="ord-1",
                    period="2026-12-03",
                    congestion_point=CP,
                    price=Decimal("6.25"),
                    penalty=Decimal("1.5"),
                    net_settlement=Decimal("4.75"),
                    isps=[
                        FlexOrderSettlementIsp(
                            start=69,
                            baseline_power_w=50000,
                            ordered_flex_power_w=-7500,
                            actual_power_w=44000,
                            delivered_flex_power_w=-6000,
                            power_deficiency_w=-1500,
                        )
                    ],
                )
            ],
            contract_settlements=[
                ContractSettlement(
                    periods=[
                        ContractSettlementPeriod(
                            period="2026-12-03", isps=[ContractSettlementIsp(start=69, reserved_power_w=0)]
                        )
                    ]
                )
            ],
        ),
        FlexSettlementResponse(
            **_h("agr.test"),
            flex_settlement_message_id=UUID1,
            flex_order_settlement_statuses=[
                FlexOrderSettlementStatus(
                    order_reference="ord-1", disposition="Disputed", dispute_reason="meter gap"
                )
            ],
        ),
        DPrognosis(
            **_h("agr.test"), **flex, revision=1, isps=[DPrognosisIsp(power_w=50000, start=1, duration=96)]
        ),
        DPrognosisResponse(
            **_h("dso.test"),
            d_prognosis_message_id=UUID1,
            flex_order_statuses=[FlexOrderStatus(flex_order_message_id=UUID2, is_validated=True)],
        ),
        Metering(
            **_h("agr.test"),
            revision=1,
            period="2026-12-03",
            ean="E123456789012345678",
            profiles=[
                MeteringProfile(
                    profile_type="Power",
                    unit="kW",
                    isps=[
                        MeteringIsp(start=73, value=Decimal("32.5")),
                        MeteringIsp(start=74, value=Decimal("30")),
                    ],
                )
            ],
        ),
        MeteringResponse(**_h("dso.test"), metering_message_id=UUID1),
    ]


def test_library_and_gridflex_read_and_write_each_others_messages_byte_for_byte() -> None:
    messages = ours()
    encoded = [encode(m).decode() for m in messages]
    key, library_key = SigningKey.generate(), SigningKey.generate()
    signed = seal(encoded[0].encode(), key, "dso.test", "DSO")
    out = run_once(
        {
            "mode": "codec",
            "ours": encoded,
            "signed": signed.decode(),
            "gridflex_public_key": key.public_b64,
            "library_private_key": library_key.private_b64,  # our key format is the library's
        }
    )
    assert out["errors"] == []
    assert len(encoded) == len(out["samples"]) == 14  # the 14 messages GridFlex speaks
    # the library parses each of ours and renders exactly our bytes again
    for mine, theirs in zip(encoded, out["rerendered"], strict=True):
        assert theirs == mine
    # the library's own rendering of the same content is ours, and we decode it to the same model
    assert out["samples"] == encoded
    for sample, model in zip(out["samples"], messages, strict=True):
        assert decode(sample.encode()) == model
    # our SignedMessage opens with the library under our public key, and theirs with ours
    assert out["signed_sender"] == ["dso.test", "DSO"]
    assert out["unsealed"] == encoded[0]
    env = parse_envelope(out["library_signed"].encode())
    assert (env.sender_domain, env.sender_role) == ("dso.test", "DSO")
    assert open_envelope(env, verify_key(library_key.public_b64)).decode() == encoded[0]
