"""Relief per euro of the market on the twin: per seed, the same loop without and with the market.

For each seed: the scenario of `gridflex demo --market` (the FSPs' sites market-only), the
twin without the market (the reference: guard-only control of the other sites, nobody
moves the FSPs' sites) and the twin with it (`TwinMarket`); relief = the reference's kVAh
above the element's rating minus the market run's; per euro = over the net paid
(settled price − penalties). Deterministic: a seed gives the same figures every run, so
the spread over seeds is the fleets', not the clock's.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from cloud_controller import Book, MarketConfig, MarketStore
from gridflex.loop.fsp_battery import BatteryBook, SiteBattery
from gridflex.loop.fsp_offers import (
    AGG_FSP,
    GATE_CLOSURE_S,
    SCRIPTED_FSP,
    VALUE_EUR_PER_KWH,
    fsp_plans,
    market_sites,
)
from gridflex.loop.fsp_prognosis import DevicePrognosis, device_prognosis
from gridflex.loop.report import element_figures
from gridflex.loop.scenario import LoopScenario, LoopSettings, build_scenario
from gridflex.loop.twin import TwinResult, run_twin
from gridflex.loop.twin_market import TwinMarket, twin_metering
from protocols.assets import EV, HP
from protocols.market import ISP_S

__all__ = ["ReliefRow", "demo_settings", "relief_of_seed", "summarise"]

RISK = 0.1  # the demo's auto_request risk


def demo_settings(seed: int, n_sites: int = 6) -> LoopSettings:
    """`gridflex demo --market --quick --sites N` on the twin: 14:00-21:00, 7 days of history, 100 scenarios."""
    return LoopSettings(
        n_sites=n_sites,
        seed=seed,
        bacnet=False,
        congestion_scenarios=100,
        history_days=7,
        start_h=14.0,
        end_h=21.0,
        poll_s=240.0,
    )


@dataclass(frozen=True)
class ReliefRow:
    """One seed's reference vs market figures at the element."""

    seed: int
    prognosis: str
    fsp_sites: int
    reference_kvah: float
    market_kvah: float
    relief_kvah: float
    #: the DSO's need: the kWh of its requests' ISPs (each request's last revision)
    requested_kwh: float
    orders: int
    ordered_kwh: float
    delivered_kwh: float
    net_eur: float
    relief_kvah_per_eur: float | None
    cpu_s: float
    #: FSP sites with a battery the FSP offers (0 without `batteries`)
    battery_sites: int = 0


def _overload_kvah(scenario: LoopScenario, result: TwinResult) -> float:
    s = scenario.settings
    assert scenario.element is not None  # a physical congestion (`congestion="station"`)
    fig = element_figures(
        scenario.element_loading_pct(result.truth),
        scenario.element,
        scenario.element_rating_kva,
        s.period_s / 3600,
    )
    return float(fig.overload_kvah)


def _nominal_kw(scenario: LoopScenario) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for spec in scenario.specs:
        if spec.ev_kw:
            out[(spec.site, EV)] = float(spec.ev_kw)
        if spec.hp_kw:
            out[(spec.site, HP)] = float(spec.hp_kw)
    return out


def _batteries(scenario: LoopScenario, fsp_sites: Sequence[str]) -> BatteryBook:
    """The FSP sites' batteries, their SoC and expected power from the sites' run without orders (their telemetry)."""
    out: dict[str, SiteBattery] = {}
    for spec in scenario.specs:
        if spec.site in fsp_sites and spec.battery_kwh:
            b = SiteBattery.from_run(
                scenario.no_control, spec.site, float(spec.battery_kwh), float(spec.battery_kw or 5.0)
            )
            if b is not None:
                out[spec.site] = b
    return BatteryBook(out)


def _market(
    scenario: LoopScenario, store_dir: Path, fsp_sites: Sequence[str], prognosis: str, batteries: bool = False
) -> TwinMarket:
    nominal = _nominal_kw(scenario)
    flex = {s.site: nominal.get((s.site, EV), 0.0) + nominal.get((s.site, HP), 0.0) for s in scenario.specs}
    cp = (scenario.element or "root").lower()
    config = MarketConfig.model_validate(
        {
            "fsps": {AGG_FSP: {}, SCRIPTED_FSP: {}},
            "congestion_points": {cp: sorted(flex)},
            "gate_closure_s": GATE_CLOSURE_S,
            "auto_request": {"enabled": True, "risk": RISK, "value_eur_per_kwh": VALUE_EUR_PER_KWH},
        }
    )
    book = Book(config, MarketStore(store_dir / "market.sqlite"))
    plans = fsp_plans(flex, fsp_sites, scenario, prognosis, baseline="fsp_prognosis")
    # the dispatch splits an order by what the FSP believes its devices can give (nominal: the schedule's)
    believed = device_prognosis(scenario, fsp_sites, prognosis if prognosis != "nominal" else "schedule")
    assert isinstance(believed, DevicePrognosis)
    if prognosis == "nominal":  # the offers carry no prognosis: the settlement's baseline is the schedule's
        plans = [replace(p, prognosis_kw=believed.baseline_kw(p.sites)) for p in plans]
    return TwinMarket(
        book,
        cp,
        plans,
        believed,
        nominal,
        RISK,
        n_scenarios=scenario.settings.congestion_scenarios or 100,
        physics_step_s=scenario.settings.physics_step_s,
        batteries=_batteries(scenario, fsp_sites) if batteries else None,
    )


def relief_of_seed(
    settings: LoopSettings, region: Any, sources: Sequence[str] = ("schedule",), *, batteries: bool = False
) -> list[tuple[ReliefRow, dict[str, Any]]]:
    """One seed: the reference twin once, then the market twin per prognosis source; a row and details each.

    `batteries`: the FSPs also offer their sites' battery discharge (`fsp_battery`).

    The details: the DSO's request actions, refused offers, the clearings, unsettled orders
    and the number of limit commands sent.
    """
    t0 = time.process_time()
    scenario = build_scenario(settings, region)
    flex_sites = [s.site for s in scenario.specs if s.ev_kw or s.hp_kw]
    fsp_sites = market_sites(flex_sites)
    reference = run_twin(scenario, market_only_sites=fsp_sites)
    ref_kvah = _overload_kvah(scenario, reference)
    ref_cpu = time.process_time() - t0
    out = []
    for source in sources:
        t1 = time.process_time()
        with tempfile.TemporaryDirectory(prefix="gridflex-market-twin-") as tmp:
            market = _market(scenario, Path(tmp), fsp_sites, source, batteries)
            with_market = run_twin(scenario, market_only_sites=fsp_sites, hook=market)
            settlements, failed = market.book.settle_due(settings.end, twin_metering(with_market))
            orders = market.book.store.orders()
            requested = sum(i.kw for r, _ in market.book.store.requests() for i in r.isps) * ISP_S / 3600.0
        mkt_kvah = _overload_kvah(scenario, with_market)
        net = sum(s.net_eur for s in settlements)
        relief = ref_kvah - mkt_kvah
        row = ReliefRow(
            seed=settings.seed,
            prognosis=source,
            fsp_sites=len(fsp_sites),
            battery_sites=len(market.batteries.batteries) if market.batteries is not None else 0,
            reference_kvah=round(ref_kvah, 2),
            market_kvah=round(mkt_kvah, 2),
            relief_kvah=round(relief, 2),
            requested_kwh=round(requested, 2),
            orders=sum(1 for o in orders if any(i.kw > 0 for i in o.isps)),
            ordered_kwh=round(sum(i.kw for o in orders for i in o.isps) * ISP_S / 3600.0, 2),
            delivered_kwh=round(sum(s.delivered_kwh for s in settlements), 2),
            net_eur=round(net, 2),
            relief_kvah_per_eur=round(relief / net, 3) if net > 0 else None,
            cpu_s=round(ref_cpu + time.process_time() - t1, 1),
        )
        details = {
            "actions": market.actions,
            "refused": market.refused,
            "clearings": [
                {k: c[k] for k in ("clearing_id", "status", "cost_eur", "shortfall", "refused")}
                for c in market.clearings
            ],
            "unsettled": failed,
            "commands": market.commands,
        }
        out.append((row, details))
    return out


def summarise(rows: Sequence[ReliefRow]) -> dict[str, Any]:
    """Per prognosis source: mean and spread (sample standard deviation) over the seeds, and the rows."""

    def stats(values: list[float]) -> dict[str, float]:
        if not values:
            return {}
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return {
            "mean": round(statistics.fmean(values), 3),
            "sd": round(sd, 3),
            "min": min(values),
            "max": max(values),
        }

    out: dict[str, Any] = {}
    for source in dict.fromkeys(r.prognosis for r in rows):
        mine = [r for r in rows if r.prognosis == source]
        out[source] = {
            "seeds": [r.seed for r in mine],
            "relief_kvah": stats([r.relief_kvah for r in mine]),
            "net_eur": stats([r.net_eur for r in mine]),
            "requested_kwh": stats([r.requested_kwh for r in mine]),
            "ordered_kwh": stats([r.ordered_kwh for r in mine]),
            "delivered_kwh": stats([r.delivered_kwh for r in mine]),
            "relief_kvah_per_eur": stats(
                [r.relief_kvah_per_eur for r in mine if r.relief_kvah_per_eur is not None]
            ),
            "rows": [asdict(r) for r in mine],
        }
    return out
