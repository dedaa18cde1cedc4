"""The live FSP dispatch of an order: its EVs' and heat pumps' limits per ISP, sent once each ISP has started.

Two sites with an 11 kW EV (floor 4.2 kW: 6.8 kW to give at full charge), b003 also a
9 kW heat pump (4.8 kW to give). ISP 1: b003's EV charges half the ISP, its heat pump is
off → 6.8 + 3.4 = 10.2 kW reducible; an order of 5.1 kW cuts f = 0.5 → both EVs limited to
11 − 0.5·6.8 = 7.6 kW, the heat pump left alone. ISP 2: 6.8 + 6.8 + 4.8 = 18.4 kW; 13.8 kW
ordered → f = 0.75 → EVs 5.9 kW, heat pump 9 − 0.75·4.8 = 5.4 kW.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from cloud_controller import AssetRef, CommandBuilder, SiteRef
from gridflex.loop.fsp_dispatch import LimitDispatch, device_nominal_kw, order_limits
from gridflex.loop.fsp_prognosis import DevicePrognosis
from protocols.assets import EV, HP
from protocols.market import MarketIsp, MarketOrder
from protocols.messages import Command
from protocols.signing import verify

T0 = datetime(2030, 1, 15, 16, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=15)
KEY = bytes.fromhex("44" * 32)
SITES = (
    SiteRef("b001", 0, (AssetRef("meter", "meter"), AssetRef(EV, "ev", 11.0))),
    SiteRef("b003", 1, (AssetRef("meter", "meter"), AssetRef(EV, "ev", 11.0), AssetRef(HP, "hp", 9.0))),
)
PROGNOSIS = DevicePrognosis(
    device_kw={},
    reducible_kw={
        ("b001", EV): {T0: 6.8, T1: 6.8},
        ("b003", EV): {T0: 3.4, T1: 6.8},
        ("b003", HP): {T0: 0.0, T1: 4.8},
    },
    net_kw={},
)


def _order(kws: list[float], order_id: str = "off-1:o1") -> MarketOrder:
    return MarketOrder(
        order_id=order_id,
        clearing_id="c1",
        offer_id="off-1",
        option_id="o1",
        fsp="gridflex-agg",
        congestion_point="t_idx_77",
        ts=T0 - timedelta(minutes=30),
        factor=1.0,
        isps=[MarketIsp(start=T0 + k * timedelta(minutes=15), kw=kw) for k, kw in enumerate(kws)],
        price_eur_per_kwh=0.15,
        price_eur=1.0,
    )


def _dispatch(sent: list[Command], now: list[datetime]) -> LimitDispatch:
    async def send(cmds: list[Command]) -> None:
        sent.extend(cmds)

    builder = CommandBuilder(period_s=900.0, margin_s=0.0, signing_keys={"b001": KEY, "b003": KEY})
    return LimitDispatch(PROGNOSIS, device_nominal_kw(SITES), builder, send, lambda: now[0])


def test_nominal_kw_of_the_evs_and_heat_pumps_only() -> None:
    assert device_nominal_kw(SITES) == {("b001", EV): 11.0, ("b003", EV): 11.0, ("b003", HP): 9.0}


def test_an_order_over_two_ev_sites_is_limits_of_nominal_less_the_cut_share() -> None:
    limits = order_limits(_order([5.1, 13.8]), ["b001", "b003"], PROGNOSIS, device_nominal_kw(SITES))
    assert [(x.start, x.site, x.asset, x.p_limit_kw) for x in limits] == [
        (T0, "b001", EV, 7.6),
        (T0, "b003", EV, 7.6),
        (T1, "b001", EV, 5.9),
        (T1, "b003", EV, 5.9),
        (T1, "b003", HP, 5.4),
    ]
    # only the order's sites: b003 alone gives 10.2 − 6.8 = 3.4 kW in ISP 1, so 5.1 kW cuts it fully
    only = order_limits(_order([5.1]), ["b003"], PROGNOSIS, device_nominal_kw(SITES))
    assert [(x.site, x.asset, x.p_limit_kw) for x in only] == [("b003", EV, 4.2)]


def test_each_isps_limits_are_sent_signed_once_it_has_started_and_expire_at_its_end() -> None:
    sent: list[Command] = []
    now = [T0 - timedelta(minutes=20)]
    d = _dispatch(sent, now)
    assert d.accept(_order([5.1, 13.8]), ["b001", "b003"]) == 5
    assert d.accept(_order([5.1, 13.8]), ["b001", "b003"]) == 5  # once per order id
    assert asyncio.run(d.step()) == []  # before the ISP: an agent refuses a command not yet valid
    now[0] = T0 + timedelta(seconds=10)
    first = asyncio.run(d.step())
    assert [(c.site, c.asset, c.kind, c.value) for c in first] == [
        ("b001", EV, "p_limit_kw", 7.6),
        ("b003", EV, "p_limit_kw", 7.6),
    ]
    assert all(c.valid_from == now[0] and c.valid_until == T1 for c in first)  # released at the ISP's end
    assert all(verify(c, KEY) for c in first)
    assert asyncio.run(d.step()) == []  # sent once
    now[0] = T1 + timedelta(seconds=5)
    second = asyncio.run(d.step())
    assert [(c.site, c.asset, c.value) for c in second] == [
        ("b001", EV, 5.9),
        ("b003", EV, 5.9),
        ("b003", HP, 5.4),
    ]
    assert all(c.valid_until == T1 + timedelta(minutes=15) for c in second)
    assert sent == first + second
    assert d.sent == {"off-1:o1": [c.cmd_id for c in first + second]}
    assert d.missed == [] and d.scheduled == []


def test_a_limit_whose_isp_ended_before_it_could_be_sent_is_missed_not_sent() -> None:
    sent: list[Command] = []
    now = [T1 + timedelta(seconds=1)]  # dispatched late: ISP 1 is over, ISP 2 runs
    d = _dispatch(sent, now)
    status = asyncio.run(d.execute(_order([5.1, 13.8]), ["b001", "b003"]))
    assert status == "5 device limits"
    assert [(c.site, c.asset) for c in sent] == [("b001", EV), ("b003", EV), ("b003", HP)]
    assert [(x.start, x.site) for x in d.missed] == [(T0, "b001"), (T0, "b003")]
