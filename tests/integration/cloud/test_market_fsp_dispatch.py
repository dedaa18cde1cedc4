"""A market order dispatched as the FSP's EV limit, end to end: real Mosquitto, a simulated building with an
11 kW EV (Modbus), its signing edge agent and the real controller's command path.

The order asks 3.4 kW in the ISP now running; the prognosis gives the EV 6.8 kW to give (11 kW less the
4.2 kW floor), so f = 0.5 and the limit is 11 − 0.5·6.8 = 7.6 kW: sent signed and fenced through
`CloudController._publish_commands`, acked `applied` by the agent, valid to the ISP's end, and the
charger's measured power (the controller's telemetry) at or under 7.6 kW where it drew 11 kW before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cloud_controller import CommandBuilder
from cloud_controller.config import CloudConfig
from cloud_controller.live.types import AssetRef, History, Plan, SiteRef
from cloud_controller.registry import Registry
from cloud_controller.service import CloudController
from gridflex.loop.fsp_dispatch import LimitDispatch, device_nominal_kw
from gridflex.loop.fsp_prognosis import DevicePrognosis
from gridflex.ops.broker import MosquittoBroker
from protocols.assets import EV
from protocols.clock import RealClock
from protocols.market import ISP_S, MarketIsp, MarketOrder
from simulators.fleet import SiteSpec
from tests.integration.cloud.one_building import one_building, signed_fenced_agent, until
from tests.integration.edge_agent.helpers import running_agent

pytestmark = pytest.mark.integration

SITE = "b001"
KEY = bytes.fromhex("55" * 32)
REGISTRY = Registry(
    sites=(SiteRef(SITE, 0, (AssetRef("meter", "meter"), AssetRef(EV, "ev", 11.0, p_guaranteed_min_kw=4.2))),)
)
EV_P = f"{EV}/p_kw"


class NoPlanner:
    """A stand-in planner that commands nothing: only the market's limit moves the EV."""

    def plan(self, now: datetime, sites: object, history: History) -> Plan:
        return Plan(now, 60.0, [], [0.0], [0.0], np.inf, [], {}, 0.1, [])

    def correct(self, now: datetime, sites: object) -> list[Any]:
        return []


def _config(port: int, tmp: Path) -> CloudConfig:
    (tmp / "keys").mkdir(exist_ok=True)
    (tmp / "keys" / f"{SITE}.k1.key").write_text(KEY.hex(), encoding="utf-8")
    return CloudConfig.model_validate(
        {
            "broker": {"port": port, "client_id": "test-cloud-fspd"},
            "store": {"path": str(tmp / "store.sqlite")},
            "control": {"period_s": 3600, "guard_period_s": 0},
            "signing_keys_dir": str(tmp / "keys"),
        }
    )


@contextlib.asynccontextmanager
async def _controller(cfg: CloudConfig) -> AsyncIterator[CloudController]:
    ctl = CloudController(cfg, REGISTRY, clock=RealClock(), planner=NoPlanner())
    task = asyncio.create_task(ctl.run())
    try:
        async with asyncio.timeout(20):
            await ctl.session.wait_connected(20)
        yield ctl
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


SPEC = SiteSpec(SITE, 0, annual_kwh=4000.0, heat_annual_kwh=8000.0, ev_kw=11.0)


def _order(isp: datetime) -> MarketOrder:
    return MarketOrder(
        order_id="ev-offer:o1",
        clearing_id="c1",
        offer_id="ev-offer",
        option_id="o1",
        fsp="gridflex-agg",
        congestion_point="t1",
        ts=isp,
        factor=1.0,
        isps=[MarketIsp(start=isp, kw=3.4)],
        price_eur_per_kwh=0.15,
        price_eur=0.13,
    )


async def test_an_ordered_isp_limits_the_ev_through_the_command_path_and_it_draws_under_the_limit(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    isp = datetime.fromtimestamp(now.timestamp() - now.timestamp() % ISP_S, tz=UTC)  # the ISP now running
    if (isp + timedelta(seconds=ISP_S) - now).total_seconds() < 12:
        isp += timedelta(seconds=ISP_S)  # too close to its end: the next one (sent when it starts)
        await asyncio.sleep((isp - now).total_seconds() + 0.1)
    async with one_building(SPEC, mosquitto.port, tmp_path) as bed:
        charger = bed.buildings[SITE].ev
        assert charger is not None
        charger.plug_in(e_need_kwh=60.0, departure_s=10**7)  # charging at its 11 kW for the test
        async with (
            running_agent(signed_fenced_agent(bed, tmp_path, KEY)),
            _controller(_config(mosquitto.port, tmp_path)) as ctl,
        ):
            snap = ctl.snapshots
            await until(lambda: snap[SITE].points.get(EV_P, 0.0) > 10.5, 20, "the EV measured at 11 kW")
            prognosis = DevicePrognosis({}, {(SITE, EV): {isp: 6.8}}, {})
            builder = CommandBuilder(period_s=ISP_S, margin_s=0.0, signing_keys=ctl.dr_activator.ctx.keys)
            dispatch = LimitDispatch(
                prognosis, device_nominal_kw(REGISTRY.sites), builder, ctl._publish_commands, ctl.clock.now
            )
            await until(lambda: ctl._fence_now() is not None, 20, "the dispatch lease held")
            assert await dispatch.execute(_order(isp), [SITE]) == "1 device limits"
            (cmd_id,) = dispatch.sent["ev-offer:o1"]
            tracked = ctl.tracker.sent[cmd_id]
            assert (tracked.command.kind, tracked.command.value) == ("p_limit_kw", 7.6)
            assert tracked.command.valid_until == isp + timedelta(seconds=ISP_S)  # released at the ISP's end
            await until(lambda: ctl.tracker.sent[cmd_id].status is not None, 20, "the limit's ack")
            assert ctl.tracker.sent[cmd_id].status == "applied"
            assert charger.p_limit_kw == pytest.approx(7.6)
            t_acked = datetime.now(UTC)
            await until(
                lambda: (
                    (snap[SITE].measured_at or t_acked) > t_acked
                    and snap[SITE].points.get(EV_P, 99.0) <= 7.6 + 0.05
                ),
                20,
                "the EV measured under its limit",
            )
            assert dispatch.missed == [] and dispatch.scheduled == []
