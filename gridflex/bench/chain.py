"""`gridflex bench` for the flexibility value chain: record stores, UFTP, settlement, the market, DR selection.

Why a module of its own: `gridflex/bench/__init__.py` holds the platform's benchmarks
(contract, dispatch, congestion, study, ingest, store, loop, test bed); these five measure
the DSO–aggregator chain. Same rules: each command calls its subject's public functions and
prints its figures as a table, with the anchor measured in the same run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from gridflex.bench.settlement import SettlementFigures

__all__ = ["register"]


def _month_rows(table: Table, fig: SettlementFigures) -> None:
    """The month from each store: backfill, raw read (anchor), rollup read, settle_month, checks."""
    for month in (fig.sqlite, fig.postgres):
        if month is None:
            continue
        kind = "SQLite" if month.kind == "sqlite" else "PostgreSQL"
        server = " + server" if month.kind == "postgres" else ""
        table.add_row(
            f"{kind}: rollups backfilled from {month.samples:,} samples",
            f"{month.backfill_s:.1f} s (CPU{server} {month.backfill_cpu_s:.1f} s)",
            "",
        )
        table.add_row(
            f"{kind}: anchor, read_bucket_means from the samples, {month.sites:,} sites",
            f"{month.raw_s:.2f} s (CPU {month.raw_cpu_s:.2f} s{_server(month.raw_server_cpu_s, server)})",
            "",
        )
        table.add_row(
            f"{kind}: read_bucket_means from the ISP rollups",
            f"{month.rollup_s:.2f} s (CPU {month.rollup_cpu_s:.2f} s{_server(month.rollup_server_cpu_s, server)})",
            "",
        )
        table.add_row(f"{kind}: settle_month on what it read", f"{month.settle_s:.2f} s", "")
        table.add_row(f"**{kind}: the month settled from the store**", f"{month.month_s:.2f} s", "<= 10 s")
        table.add_row(
            f"{kind}: samples / rollups (read, wall)",
            f"{month.raw_s / max(month.rollup_s, 1e-9):.1f} x",
            "",
        )
        same_net = abs(month.net_eur - fig.net_eur_array_sample) < 1e-6 * max(
            1.0, abs(fig.net_eur_array_sample)
        )
        table.add_row(
            f"{kind}: rollups = samples = written; net = from the arrays",
            "yes" if month.same and same_net else "NO",
            "yes",
        )


def _server(cpu_s: float, server: str) -> str:
    return f", server {cpu_s:.2f} s" if server else ""


def _write_cost_rows(table: Table, *, postgres: bool) -> None:
    """Samples/s of one writer with and without the ISP rollups (fresh stores, alternating rounds)."""
    import tempfile
    from pathlib import Path

    from gridflex.bench.store import RollupWriteCost, rollup_write_cost
    from gridflex.ops.postgres import LoopbackPostgres

    with tempfile.TemporaryDirectory() as tmp:

        def sqlite_file(k: int) -> str:
            return str(Path(tmp) / f"w{k}-{len(costs)}.sqlite")

        costs: list[RollupWriteCost] = []
        for size in (10, 500):
            costs.append(rollup_write_cost("sqlite", sqlite_file, size=size))
        if postgres:
            with LoopbackPostgres() as pg:
                costs += [
                    rollup_write_cost(
                        "postgres", lambda _k: pg.dsn(pg.fresh_schema()), password=pg.password, size=size
                    )
                    for size in (10, 500)
                ]
    for c in costs:
        kind = "SQLite" if c.kind == "sqlite" else "PostgreSQL"
        table.add_row(
            f"{kind} write, messages of {c.size} samples: samples/s without | with rollups",
            " / ".join(f"{v:,.0f}" for v in c.without_per_s)
            + " | "
            + " / ".join(f"{v:,.0f}" for v in c.with_per_s),
            f"{c.ratio:.2f} x",
        )
        table.add_row(
            f"{kind} write, messages of {c.size}: writer CPU us/sample without | with",
            " / ".join(f"{v:.1f}" for v in c.without_cpu_us)
            + " | "
            + " / ".join(f"{v:.1f}" for v in c.with_cpu_us),
            "",
        )


def register(app: typer.Typer, console: Console, figures_table: Callable[[str], Table]) -> None:  # noqa: C901, PLR0915 (the commands)
    """Add the chain's benchmarks to `gridflex bench`."""
    _figures_table = figures_table

    @app.command("records")
    def bench_records(
        writers: Annotated[
            list[int] | None, typer.Option("--workers", help="writer process counts (repeat)")
        ] = None,
        offers: Annotated[int, typer.Option(min=1, help="offers per writer")] = 500,
    ) -> None:
        """Market offers/s through the book's write section, SQLite vs a loopback PostgreSQL, 1 and 2 writers."""
        import tempfile
        from pathlib import Path

        from gridflex.bench.records import bench_offer_writers
        from gridflex.ops.postgres import LoopbackPostgres

        counts = writers or [1, 2]
        table = Table(title=f"gridflex bench records ({offers} offers per writer, one transaction each)")
        for col in ("store", "writers", "offers/s", "vs SQLite x1", "every offer once"):
            table.add_column(col, justify="right")
        anchor: float | None = None
        with tempfile.TemporaryDirectory() as tmp, LoopbackPostgres() as pg:
            runs = [("sqlite", n) for n in counts] + [("postgres", n) for n in counts]
            for k, (kind, n) in enumerate(runs):  # each run on an empty store of its own
                location = str(Path(tmp) / f"m{k}.sqlite") if kind == "sqlite" else pg.dsn(pg.fresh_schema())
                fig = bench_offer_writers(
                    "sqlite" if kind == "sqlite" else "postgres",
                    n,
                    location=location,
                    password=pg.password,
                    n_offers=offers,
                )
                anchor = anchor or fig.offers_per_s
                ratio = fig.offers_per_s / anchor if anchor else 0.0
                table.add_row(
                    kind, str(n), f"{fig.offers_per_s:,.0f}", f"{ratio:.2f}", "yes" if fig.exact else "NO"
                )
        console.print(table)

    @app.command("uftp")
    def bench_uftp(
        n: Annotated[int, typer.Option(help="Timed round trips (after 10 to warm up).")] = 500,
    ) -> None:
        """A UFTP FlexRequest -> FlexRequestResponse round trip on loopback against a bare HTTP POST."""
        from gridflex.bench.uftp import uftp_figures

        fig = uftp_figures(n)
        table = _figures_table(
            f"gridflex bench uftp ({fig.n} round trips, {fig.request_bytes} B FlexRequest)"
        )
        table.add_row(
            "UFTP round trip p50 (2 POSTs, 2 signatures, 2 verifications)", f"{fig.uftp_p50_ms:.2f} ms", ""
        )
        table.add_row("UFTP round trip p99", f"{fig.uftp_p99_ms:.2f} ms", "")
        table.add_row("bare HTTP POST p50 (same size, same server)", f"{fig.post_p50_ms:.2f} ms", "")
        table.add_row("bare HTTP POST p99", f"{fig.post_p99_ms:.2f} ms", "")
        console.print(table)

    @app.command("settlement")
    def bench_settlement(
        sites: Annotated[int, typer.Option(help="Sites settled for a month (30 days x 96 ISPs).")] = 1000,
        per_order_sites: Annotated[
            int, typer.Option(help="Sites run through the per-order path (scaled).")
        ] = 5,
        store_sites: Annotated[
            int, typer.Option(help="Sites read from the SQLite store by the old per-sample path (scaled).")
        ] = 10,
        array_sites: Annotated[
            int, typer.Option(help="Sites written to the stores and read by the array path (0: all).")
        ] = 0,
        postgres: Annotated[bool, typer.Option(help="Also the month from a loopback PostgreSQL.")] = True,
        write_cost: Annotated[
            bool, typer.Option(help="Also samples/s written with and without the ISP rollups.")
        ] = True,
    ) -> None:
        """A month of settlement for many sites (arrays) against a plain numpy pass and the per-order path."""
        from gridflex.bench.settlement import settlement_figures

        fig = settlement_figures(
            sites,
            per_order_sites=per_order_sites,
            store_sites=store_sites,
            array_sites=array_sites or None,
            postgres=postgres,
        )
        table = _figures_table(
            f"gridflex bench settlement ({fig.sites:,} sites x 30 days x 96 ISPs, {fig.orders:,} orders)"
        )
        table.add_row(
            "settle_month (NODES 5 working days, event days per site)", f"{fig.batch_s:.2f} s", "<= 10 s"
        )
        table.add_row("anchor: plain numpy pass, same arrays (fixed 5 days)", f"{fig.anchor_s:.2f} s", "")
        table.add_row(
            f"per-order path (dicts), {fig.per_order_sites} sites scaled to {fig.sites:,}",
            f"{fig.per_order_scaled_s:.1f} s",
            "",
        )
        table.add_row(
            f"old: store read (SQLite, read_series + ISP means), {fig.store_sites} sites scaled to {fig.sites:,}",
            f"{fig.store_read_scaled_s:.1f} s (CPU {fig.scaled(fig.store_read_cpu_s, fig.store_sites):.1f} s)",
            "",
        )
        _month_rows(table, fig)
        if write_cost:
            _write_cost_rows(table, postgres=postgres)
        same = abs(fig.net_eur_batch_sample - fig.net_eur_per_order_sample) < 1e-6 * max(
            1.0, abs(fig.net_eur_batch_sample)
        )
        table.add_row("net EUR of the sample: arrays = per-order path", "yes" if same else "NO", "yes")
        table.add_row("net EUR, all sites", f"{fig.net_eur:,.2f}", "")
        console.print(table)

    @app.command("settlement-orders")
    def bench_settlement_orders(
        orders: Annotated[int, typer.Option(help="Orders of 12 ISPs, one per site (SQLite store).")] = 1000,
    ) -> None:
        """`POST /market/settlements` for N orders: the per-order path (anchor) vs one array read."""
        import os

        from gridflex.bench.settlement_orders import orders_figures

        load = os.getloadavg()
        fig = orders_figures(orders)
        table = _figures_table(f"gridflex bench settlement-orders ({fig.orders:,} orders x 12 ISPs, SQLite)")
        table.add_row(
            "anchor: per-order path (store_metering per order)",
            f"{fig.per_order_s:.2f} s (CPU {fig.per_order_cpu_s:.2f} s)",
            "",
        )
        table.add_row(
            f"array path (ArrayMetering, {fig.reads} read)",
            f"{fig.array_s:.2f} s (CPU {fig.array_cpu_s:.2f} s)",
            "",
        )
        table.add_row(
            "per-order / array (wall, CPU)",
            f"{fig.per_order_s / fig.array_s:.1f}x, {fig.per_order_cpu_s / fig.array_cpu_s:.1f}x",
            "",
        )
        table.add_row("settlements equal field for field", "yes" if fig.same else "NO", "yes")
        table.add_row("net EUR", f"{fig.net_eur:,.2f}", "")
        table.add_row("load average at start (1, 5, 15 min)", ", ".join(f"{x:.2f}" for x in load), "")
        console.print(table)

    @app.command("market")
    def bench_market(
        sizes: Annotated[
            str, typer.Option(help="offers x ISPs x congestion points, comma-separated")
        ] = "100x96x10,1000x96x10",
    ) -> None:
        """Market clearing time (lumpy MILP) against its divisible LP anchor, per size."""
        from gridflex.bench.market import market_figures

        table = Table(title="gridflex bench market (seeded offers; DSO value 50 EUR/kWh)")
        for col in (
            "offers x ISPs x points",
            "MILP s",
            "LP anchor s",
            "ratio",
            "orders",
            "MIP gap",
            "target",
        ):
            table.add_column(col, justify="right")
        for size in sizes.split(","):
            try:
                n_offers, n_isps, n_cps = (int(x) for x in size.strip().split("x"))
            except ValueError:
                raise typer.BadParameter(f"{size!r} is not like 1000x96x10", param_hint="--sizes") from None
            fig = market_figures(n_offers, n_isps, n_cps)
            target = "<= 5 s" if (n_offers, n_isps, n_cps) == (1000, 96, 10) else ""
            table.add_row(
                size.strip(),
                f"{fig.milp_s:.2f}",
                f"{fig.lp_s:.2f}",
                f"{fig.ratio:.1f}",
                f"{fig.orders:,}",
                f"{fig.mip_gap:.1e}",
                target,
            )
        console.print(table)

    @app.command("dr-selection")
    def bench_dr_selection(
        buildings: Annotated[int, typer.Option(min=1, help="buildings, four sources each")] = 1000,
        steps: Annotated[str, typer.Option(help="comma-separated step counts (15 min each)")] = "8,96",
        objective: Annotated[
            str, typer.Option(help="flexibility, financial, bid_length, power_peak, min_cost")
        ] = "min_cost",
        pyomo_anchor: Annotated[bool, typer.Option(help="also build the shortest case with pyomo")] = True,
        whole_anchor: Annotated[
            bool, typer.Option(help="also solve the whole LP where blocks of sites answered")
        ] = True,
        time_limit_s: Annotated[float, typer.Option(help="HiGHS time limit per case")] = 120.0,
    ) -> None:
        """DR selection MILP (sources x steps, HiGHS): build and solve seconds, pyomo vs numpy build."""
        from cloud_controller.dr import OBJECTIVES
        from gridflex.bench.dr_selection import format_figures, run_dr_selection_bench

        chosen = next((o for o in OBJECTIVES if o == objective), None)
        if chosen is None:
            raise typer.BadParameter(f"unknown objective {objective!r}; known: {', '.join(OBJECTIVES)}")
        figures = run_dr_selection_bench(
            buildings,
            tuple(int(s) for s in steps.split(",") if s.strip()),
            pyomo_anchor=pyomo_anchor,
            objective=chosen,
            time_limit_s=time_limit_s,
            whole_anchor=whole_anchor,
        )
        print(format_figures(figures))
