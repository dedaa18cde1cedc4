"""The DSO's request from its own forecast (grid_case.py's numbers): the kW, and post / revise / withdraw.

At risk 0.1 the station's 90 % quantile of 110 % is 10 % over its 400 kW: 40 kW per ISP. A
forecast at 112 % revises the request to 48 kW (revision 1); the same forecast again changes
nothing; a forecast under the limit withdraws it; nothing changes after gate closure.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from cloud_controller.market.auto_request import RequestAction, request_action
from cloud_controller.market.config import AutoRequestConfig, MarketConfig
from cloud_controller.market.shell import MarketShell
from protocols.clock import SimClock
from protocols.market import MarketIsp, MarketRequest
from protocols.mqtt import MqttConfig, MqttSession
from tests.unit.market.grid_case import DELIVERY, NOW, STARTS, view

GATE = DELIVERY - timedelta(hours=2)


def test_the_need_is_the_risk_quantile_above_the_limit_in_kw() -> None:
    v = view()
    assert v.relief_needed_kw("station", 0.1) == pytest.approx({t: 40.0 for t in STARTS})
    # 70 % quantile: halfway between 105 % (50 %) and 110 % (90 %) = 107.5 % -> 7.5 % x 4 kW/% = 30 kW
    assert v.relief_needed_kw("station", 0.3) == pytest.approx({t: 30.0 for t in STARTS})
    assert v.relief_needed_kw("trafo:0", 0.5) == pytest.approx({t: 20.0 for t in STARTS})
    assert v.relief_needed_kw("trafo-0", 0.5) == v.relief_needed_kw("STATION", 0.5)  # as market ids name it
    assert view((80.0, 90.0, 99.0)).relief_needed_kw("station", 0.1) == {t: 0.0 for t in STARTS}
    with pytest.raises(ValueError, match=r"outside the forecast's levels .* choose a risk in \[0.1, 0.9\]"):
        v.relief_needed_kw("station", 0.05)
    with pytest.raises(KeyError):
        v.relief_needed_kw("no-such-element", 0.1)


def _act(
    needed: dict[datetime, float],
    open_req: MarketRequest | None,
    *,
    now: datetime = NOW,
    ordered: Sequence[datetime] = (),
) -> RequestAction | None:
    return request_action(
        "station",
        needed,
        open_req,
        set(ordered),
        now=now,
        gate_closure_s=7200.0,
        policy=AutoRequestConfig(enabled=True, min_kw=1.0, value_eur_per_kwh=0.5),
    )


def test_post_revise_withdraw_and_nothing_after_gate_closure() -> None:
    need = {t: 40.0 for t in STARTS}
    post = _act(need, None)
    assert post is not None and post.kind == "post" and post.request is not None
    req = post.request
    assert req.request_id.startswith("auto-station-") and req.revision == 0
    assert [(i.start, i.kw) for i in req.isps] == [(t, 40.0) for t in STARTS]
    assert _act({t: 40.4 for t in STARTS}, req) is None  # under min_kw: no revision
    rev = _act({**need, STARTS[0]: 48.0}, req)
    assert rev is not None and rev.kind == "revise" and rev.request is not None
    assert rev.request.revision == 1 and rev.request.request_id == req.request_id
    assert rev.request.isps[0].kw == 48.0
    gone = _act({t: 0.5 for t in STARTS}, req)
    assert gone is not None and gone.kind == "withdraw" and gone.request_id == req.request_id
    assert _act({t: 99.0 for t in STARTS}, req, now=GATE) is None  # the gate has closed: frozen
    # a new request asks only for ISPs whose gate is open and that are not ordered yet
    late = _act(need, None, now=GATE + timedelta(minutes=1), ordered=[STARTS[2]])
    assert late is not None and late.request is not None
    assert [i.start for i in late.request.isps] == [STARTS[1], STARTS[3]]
    manual = MarketRequest(
        request_id="dso-1",
        congestion_point="station",
        ts=NOW,
        isps=[MarketIsp(start=STARTS[0], kw=5.0)],
        value_eur_per_kwh=1.0,
    )
    assert _act(need, manual) is None  # the DSO's own request is not ours to revise


async def test_each_forecast_posts_revises_or_withdraws_the_open_request(tmp_path: Path) -> None:
    clock = SimClock(NOW)
    config = MarketConfig(
        fsps={"fsp-a": {}, "fsp-b": {}},
        congestion_points={"station": ["a1", "b1"]},
        auto_request={"enabled": True, "risk": 0.1, "value_eur_per_kwh": 0.5},
    )
    session = MqttSession(MqttConfig(port=1))  # never connected: every publish fails and is counted
    shell = MarketShell(config, tmp_path / "market.sqlite", clock=clock, session=session)
    try:
        (post,) = await shell.forecast_done(view())
        ((req, status),) = shell.store.requests()
        assert post.kind == "post" and status == "open" and req.revision == 0
        assert {i.start: i.kw for i in req.isps} == {t: 40.0 for t in STARTS}
        assert shell.stats.publish_failed == 2  # sent to both FSPs (no broker here: counted)
        assert shell.view is not None
        (rev,) = await shell.forecast_done(view((100.0, 107.0, 112.0)))
        ((req, _),) = shell.store.requests()
        assert rev.kind == "revise" and req.revision == 1 and req.isps[0].kw == 48.0
        assert await shell.forecast_done(view((100.0, 107.0, 112.0))) == []
        (gone,) = await shell.forecast_done(view((80.0, 90.0, 99.0)))
        assert gone.kind == "withdraw" and shell.store.requests()[0][1] == "withdrawn"
        await shell.forecast_done(view())
        await clock.step((GATE - NOW).total_seconds(), tick_s=3600)
        assert await shell.forecast_done(view((100.0, 107.0, 130.0))) == []  # gate closed: frozen
        assert [r.revision for r, s in shell.store.requests() if s == "open"] == [0]
        assert (shell.stats.auto_posted, shell.stats.auto_revised, shell.stats.auto_withdrawn) == (2, 1, 1)
    finally:
        shell.close()


async def test_a_congestion_point_the_forecast_does_not_know_is_counted_not_silent(tmp_path: Path) -> None:
    config = MarketConfig(congestion_points={"nowhere": []}, auto_request={"enabled": True})
    shell = MarketShell(
        config, tmp_path / "m.sqlite", clock=SimClock(NOW), session=MqttSession(MqttConfig(port=1))
    )
    try:
        assert await shell.forecast_done(view()) == []
        assert shell.stats.auto_errors == 1 and "nowhere" in shell.status()["auto_errors"][0]["reason"]
    finally:
        shell.close()
