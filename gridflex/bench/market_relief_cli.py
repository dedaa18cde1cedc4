"""`gridflex bench market-relief`: the market's relief per euro on the twin, reference vs market per seed.

Deterministic (simulated time, gridflex/loop/market_relief.py): the spread over seeds is
the fleets'. Prints one row per seed and prognosis source, the mean and spread per source,
the CPU and wall seconds and the load average; writes the figures to `--out` as JSON.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add `market-relief` to `gridflex bench`."""

    @app.command("market-relief")
    def bench_market_relief(
        seeds: Annotated[str, typer.Option(help="Comma-separated seeds (>= 3 for a spread).")] = "1,2,3",
        sites: Annotated[int, typer.Option(min=2, max=40, help="Buildings below the transformer.")] = 6,
        prognosis: Annotated[
            str, typer.Option(help="Comma-separated offer sources: schedule, yesterday, nominal.")
        ] = "schedule,nominal",
        battery: Annotated[
            bool, typer.Option(help="The FSPs also offer their sites' battery discharge (fsp_battery).")
        ] = False,
        out: Annotated[Path, typer.Option(help="JSON of the rows and the summary.")] = Path(
            "market-relief.json"
        ),
    ) -> None:
        """Relief (kVAh above T_idx_77's rating removed) per EUR net paid, `demo --market --quick` on the twin."""
        from cloud_controller import build_schutterwald_region
        from gridflex.loop.fsp_prognosis import PROGNOSIS_SOURCES
        from gridflex.loop.market_relief import demo_settings, relief_of_seed, summarise

        sources = [p.strip() for p in prognosis.split(",") if p.strip()]
        bad = [p for p in sources if p not in PROGNOSIS_SOURCES]
        if bad or not sources:
            raise typer.BadParameter(
                f"one or more of {', '.join(PROGNOSIS_SOURCES)}", param_hint="--prognosis"
            )
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
        w0, c0 = time.monotonic(), time.process_time()
        region = build_schutterwald_region()
        rows, details = [], {}
        for seed in seed_list:
            for row, det in relief_of_seed(demo_settings(seed, sites), region, sources, batteries=battery):
                rows.append(row)
                details[f"{seed}:{row.prognosis}"] = det
                per_eur = "n/a" if row.relief_kvah_per_eur is None else f"{row.relief_kvah_per_eur:.3f}"
                print(
                    f"seed {seed} {row.prognosis:>9} ({row.battery_sites} batteries): reference {row.reference_kvah:7.2f} kVAh, "
                    f"market {row.market_kvah:7.2f}, relief {row.relief_kvah:6.2f} kVAh; "
                    f"{row.requested_kwh:.1f} kWh requested, {row.orders} orders, {row.ordered_kwh:.2f} kWh ordered, {row.delivered_kwh:.2f} delivered, "
                    f"{row.net_eur:.2f} EUR net: {per_eur} kVAh/EUR (CPU {row.cpu_s:.0f} s)",
                    flush=True,
                )
        summary = summarise(rows)
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        wall, cpu = time.monotonic() - w0, time.process_time() - c0
        for source, s in summary.items():
            r, e = s["relief_kvah"], s["relief_kvah_per_eur"]
            d, o = s["delivered_kwh"], s["ordered_kwh"]
            print(
                f"{source}: relief {r['mean']:.2f} ± {r['sd']:.2f} kVAh (mean ± sd over {len(s['seeds'])} seeds), "
                f"delivered {d['mean']:.2f} of {o['mean']:.2f} kWh ordered "
                f"({s['requested_kwh']['mean']:.1f} kWh requested), "
                + (f"{e['mean']:.3f} ± {e['sd']:.3f} kVAh/EUR" if e else "nothing paid")
            )
        print(f"wall {wall:.0f} s, CPU {cpu:.0f} s, load average {load}, {sites} sites, batteries {battery}")
        doc = {
            "summary": summary,
            "details": details,
            "wall_s": wall,
            "cpu_s": cpu,
            "load": load,
            "sites": sites,
            "batteries": battery,
        }
        out.write_text(json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8")
