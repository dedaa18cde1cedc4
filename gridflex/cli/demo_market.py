"""`gridflex demo --market`: the closed loop with the local flexibility market at the congested element.

What runs is `gridflex/loop/market_event.py`: the DSO's requests from the controller's
forecast, two FSPs offering over the API, clearing at gate closure, orders through the
command path, settlement after delivery. The FSPs' sites are market-only: the planner and
the guard never steer them, so what an order buys is not what the controller does anyway.
With `compare` (the default) the same loop first runs without the market (same seed, same
exclusions: guard-only control of the other sites), and the summary states the market's
relief (kVAh above the element's rating removed) per euro paid against it. The summary
(summary.json `market`, summary.md "## Market") adds requests, offers, orders, delivered vs
ordered per ISP, penalties and net payments. Exit 1 when nothing cleared (no order with
kW): the market did not work.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console

__all__ = ["run_market_demo"]

console = Console()


async def _scenario(settings: Any) -> Any:
    from cloud_controller import build_schutterwald_region
    from gridflex.cli.demo import _scenario_line
    from gridflex.loop.scenario import build_scenario

    with console.status("building the region, the fleet and its no-control twin ..."):
        region = await asyncio.to_thread(build_schutterwald_region)
        scenario = await asyncio.to_thread(build_scenario, settings, region)
        await asyncio.to_thread(lambda: (scenario.yesterday_meters, scenario.older_meters))
    console.print(_scenario_line(scenario), soft_wrap=True)
    return scenario


async def _reference_run(settings: Any, scenario: Any, run_dir: Path) -> Any:
    """The closed loop with the FSPs' sites excluded and no market: its element's grid-truth figures."""
    from gridflex.loop.market_event import MarketLoop
    from gridflex.loop.report import element_figures

    with console.status("reference: the closed loop without the market ...") as status:
        async with MarketLoop(scenario, run_dir, market=False) as loop:
            await loop.run_until(
                settings.end,
                progress=lambda now: status.update(f"reference without the market: {now:%H:%M} UTC"),
            )
            result = await loop.finish()
        n = min(len(result.interval_starts), len(scenario.no_control_truth))
        truth = await asyncio.to_thread(
            functools.partial(
                scenario.truth.evaluate_series,
                {s: v[:n] for s, v in result.site_p_kw.items()},
                starts=scenario.no_control_times[:n],
            )
        )
    figures = element_figures(
        scenario.element_loading_pct(truth),
        scenario.element,
        scenario.element_rating_kva,
        settings.period_s / 3600.0,
    )
    console.print(
        f"reference (no market): {figures.element} peak {figures.peak_loading_pct:.1f} %, "
        f"{figures.overload_kvah:.1f} kVAh above its rating",
        soft_wrap=True,
    )
    return figures


async def _settle_and_section(loop: Any, bridge: Any, fsps: list[Any]) -> dict[str, Any]:
    """Settle what is due from the stored telemetry; the summary's market section."""
    from gridflex.loop.market_event import ImportedMetering
    from gridflex.loop.market_report import market_section

    ctl = loop.controller
    assert ctl is not None
    metering = ImportedMetering(loop)
    _, unsettled = await ctl.market.settle_now(metering)
    store = ctl.market.book.store
    section = market_section(
        store.requests(),
        [(o, s) for o, s, _ in store.offers()],
        store.orders(),
        store.settlements(),
        not_activated=bridge.failed,
        unsettled=unsettled,
    )
    section["settlement"]["estimated_isps"] = [f"{s} {t:%H:%M}" for s, t in metering.estimated]
    section["fsp_refusals"] = [r for f in fsps for r in f.refused]
    section["market_status"] = ctl.market.status()["stats"]
    section["market_only_sites"] = list(loop.market_only_sites())
    return section


async def _market_run(settings: Any, out: Path, compare: bool) -> int:
    from gridflex.cli.demo import _control_actions, _report
    from gridflex.loop.market_event import MarketLoop, OrderBridge, ScriptedFsp
    from gridflex.loop.market_report import against_reference, market_markdown
    from gridflex.loop.report import ElementFigures
    from gridflex.ops.broker import free_port

    t0 = time.monotonic()
    scenario = await _scenario(settings)
    reference = await _reference_run(settings, scenario, out / "reference") if compare else None
    port = free_port()
    loop = MarketLoop(scenario, out / "run", api_port=port)
    async with loop:
        fsps = [
            ScriptedFsp(plan, f"http://127.0.0.1:{port}", loop.tokens[plan.fsp], loop.clock.now)
            for plan in loop.fsp_plans()
        ]
        bridge = OrderBridge(loop)
        tasks = [asyncio.create_task(f.run(), name=f.plan.fsp) for f in fsps]
        tasks.append(asyncio.create_task(bridge.run(), name="order-bridge"))
        console.print(
            f"market (offers from the devices' {loop.prognosis} prognosis): "
            + "; ".join(
                f"{f.plan.fsp} {len(f.plan.sites)} sites, ≤ {f.plan.cap_kw:.1f} kW "
                f"at {f.plan.price_eur_per_kwh:g} EUR/kWh"
                for f in fsps
            ),
            soft_wrap=True,
        )
        try:
            with console.status("closed loop with the market ...") as status:
                await loop.run_until(
                    settings.end,
                    progress=lambda now: status.update(f"closed loop with the market: {now:%H:%M} UTC"),
                )
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await bridge.step()
        await loop.drain()
        section = await _settle_and_section(loop, bridge, fsps)
        result = await loop.finish()
        actions = _control_actions(loop, result.interval_starts)
    code = await _report(settings, scenario, result, actions, out, time.monotonic() - t0, False)
    summary = json.loads((out / "summary.json").read_text())
    if reference is not None and summary["control"].get("element"):
        with_market = ElementFigures(**summary["control"]["element"])
        section["against_reference"] = against_reference(reference, with_market, section["settlement"])
    summary["market"] = section
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    md = market_markdown(section)
    with (out / "summary.md").open("a", encoding="utf-8") as f:
        f.write(md)
    console.print(md, markup=False, highlight=False)
    if code == 0 and section["orders"]["kwh"] <= 0:
        console.print("[red]the market cleared nothing: no order with kW[/red]")
        return 1
    return code


def run_market_demo(settings: Any, out: Path, *, compare: bool = True) -> int:
    """Run it; the exit code (0: every part ran and something cleared; 2: a scenario without an element).

    `compare`: first the same loop without the market (the FSPs' sites excluded all the
    same), the reference for the market's relief per euro; twice the wall time.
    The market needs a physical congestion point: `--congestion threshold` has none. Ctrl-C
    ends it without a report (the plain demo's partial report is not built here); `--serve` is ignored.
    """
    if getattr(settings, "congestion", "station") != "station":
        console.print("--market needs --congestion station (a grid element for the congestion point)")
        return 2
    return asyncio.run(_market_run(settings, out, compare))
