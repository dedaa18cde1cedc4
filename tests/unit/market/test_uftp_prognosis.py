"""Our DSO's D-Prognosis and Metering rules (dso_prognosis.py): what is accepted, what is refused and why."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from cloud_controller.market.book import Refused
from cloud_controller.market.uftp.config import UftpPeer
from cloud_controller.market.uftp.dso_prognosis import DsoPrognoses, uftp_metering
from cloud_controller.market.uftp.envelope import SigningKey
from cloud_controller.market.uftp.messages import FlexOffer, FlexOfferOption, FlexOfferOptionIsp
from cloud_controller.market.uftp.prognosis_messages import (
    DPrognosis,
    DPrognosisIsp,
    Metering,
    MeteringIsp,
    MeteringProfile,
)

PREFIX = "ea1.2026-12.gridflex.test"
CP = f"{PREFIX}:station-7"
EAN = "E871690900000000017"
T73, T74 = datetime(2026, 12, 3, 17, 0, tzinfo=UTC), datetime(2026, 12, 3, 17, 15, tzinfo=UTC)
UUIDS = [f"11111111-2222-4333-8444-{n:012d}" for n in range(10)]
PEER = UftpPeer(
    domain="agr.test",
    role="AGR",
    endpoint="http://127.0.0.1:1/x",
    public_key=SigningKey.generate().public_b64,
    fsp="agr1",
    sites=["s1", "s2"],
    eans={EAN: "s1"},
)
HEAD = {"sender_domain": "agr.test", "time_stamp": "2026-12-03T08:00:00+00:00", "conversation_id": UUIDS[9]}


def _prognosis(mid: int, isps: Sequence[tuple[int, int, int]], revision: int = 1, cp: str = CP) -> DPrognosis:
    return DPrognosis(
        **HEAD,
        message_id=UUIDS[mid],
        period="2026-12-03",
        congestion_point=cp,
        revision=revision,
        isps=[DPrognosisIsp(start=a, duration=d, power_w=w) for a, d, w in isps],
    )


def _metering(kw: dict[int, str], ean: str = EAN, revision: int = 1) -> Metering:
    return Metering(
        **HEAD,
        message_id=UUIDS[5],
        revision=revision,
        period="2026-12-03",
        ean=ean,
        profiles=[
            MeteringProfile(
                profile_type="Power",
                unit="kW",
                isps=[MeteringIsp(start=n, value=Decimal(v)) for n, v in kw.items()],
            )
        ],
    )


def _offer(prognosis_id: str | None) -> FlexOffer:
    return FlexOffer(
        **HEAD,
        message_id=UUIDS[6],
        period="2026-12-03",
        congestion_point=CP,
        expiration_date_time="2026-12-03T15:00:00+00:00",
        flex_request_message_id=UUIDS[7],
        d_prognosis_message_id=prognosis_id,
        offer_options=[
            FlexOfferOption(
                option_reference="o",
                price=Decimal(1),
                isps=[FlexOfferOptionIsp(power_w=-5000, start=73, duration=2)],
            )
        ],
    )


def test_a_d_prognosis_must_give_every_isp_of_the_day_at_one_of_our_points() -> None:
    p = DsoPrognoses(PREFIX)
    assert p.accept_prognosis(_prognosis(0, [(1, 95, 40000)]), PEER) == (
        "a D-Prognosis gives every ISP of 2026-12-03 (1..96): ISPs [96] missing"
    )
    assert p.accept_prognosis(_prognosis(0, [(1, 96, 1)], cp="ea1.2026-12.other.test:x"), PEER) == (
        "CongestionPoint 'ea1.2026-12.other.test:x' is not one of ours"
    )
    assert p.accept_prognosis(_prognosis(0, [(1, 96, 1), (50, 1, 2)]), PEER) == "ISP 50 is given twice"
    assert p.accept_prognosis(_prognosis(1, [(1, 72, 40000), (73, 1, 50000), (74, 23, 40000)]), PEER) is None
    # the same day again needs a higher revision
    assert p.accept_prognosis(_prognosis(2, [(1, 96, 0)]), PEER) == "Revision 1 is not above the accepted 1"
    assert p.accept_prognosis(_prognosis(2, [(1, 96, 0)], revision=2), PEER) is None
    assert len(p.prognoses) == 2


def test_an_offer_naming_a_d_prognosis_gets_its_isps_and_one_naming_none_we_have_is_refused() -> None:
    p = DsoPrognoses(PREFIX)
    assert p.accept_prognosis(_prognosis(1, [(1, 72, 40000), (73, 1, 50000), (74, 23, 40000)]), PEER) is None
    got = p.offer_prognosis(_offer(UUIDS[1]), PEER, [T74, T73])
    assert got is not None and [(i.start, i.kw) for i in got] == [(T73, 50.0), (T74, 40.0)]
    assert p.offer_prognosis(_offer(None), PEER, [T73]) is None
    with pytest.raises(Refused, match=r"no accepted D-Prognosis of agr\.test"):
        p.offer_prognosis(_offer(UUIDS[3]), PEER, [T73])
    other = PEER.model_copy(update={"domain": "agr2.test"})
    with pytest.raises(Refused):
        p.offer_prognosis(_offer(UUIDS[1]), other, [T73])  # another AGR's prognosis


def test_metering_is_the_actual_of_the_eans_site_and_settles_orders_it_covers() -> None:
    p = DsoPrognoses(PREFIX)
    assert p.accept_metering(_metering({73: "32.5"}, ean="E000000000000000001"), PEER) == (
        "EAN E000000000000000001 is not a meter of agr.test"
    )
    assert p.accept_metering(_metering({73: "32.5", 74: "30"}), PEER) is None
    assert p.accept_metering(_metering({73: "1"}), PEER) == "Revision 1 is not above the accepted 1"
    assert (p.actual_kw("s1", T73), p.actual_kw("s1", T74), p.actual_kw("s2", T73)) == (32.5, 30.0, None)

    calls: list[tuple[str, ...]] = []

    def store(
        sites: Sequence[str], isps: Sequence[datetime], baseline: str
    ) -> tuple[dict[datetime, float], dict[datetime, float]]:
        calls.append(tuple(sites))
        return {}, {t: 7.0 for t in isps}

    meter = uftp_metering(store, p)
    assert meter(["s1"], [T73, T74], "fsp_prognosis") == ({}, {T73: 32.5, T74: 30.0})
    assert calls == []  # covered: the store is not read
    assert meter(["s1", "s2"], [T73], "fsp_prognosis") == ({}, {T73: 7.0})  # s2 has no Metering
    assert meter(["s1"], [T73], "nodes_5wd") == ({}, {T73: 7.0})  # needs the metered history
    assert calls == [("s1", "s2"), ("s1",)]
