"""`gridflex bench ...`: benchmarks that print figures (never pass/fail timing tests).

One home for every benchmark, one module per subject (`contract`, `study`, `ingest`,
`loop`; `dispatch` is a package of its own). The typer commands sit in `*_cli.py`
modules (and `chain.py`), grouped by what they measure: each calls a subject's public
functions and prints its figures as a table. Each command with several sections takes
`--only` to run some of them. This module only assembles `bench_app`, in the order
`gridflex bench --help` lists the commands.
"""

from __future__ import annotations

import typer

from gridflex.bench import contract_cli, engine_cli, fleet_cli, store_cli
from gridflex.bench.areas_cli import register as register_areas
from gridflex.bench.chain import register as register_chain
from gridflex.bench.common import CONTRACT_PARTS, DISPATCH_PARTS, console, figures_table, parse_parts
from gridflex.bench.market_relief_cli import register as register_market_relief

__all__ = ["CONTRACT_PARTS", "DISPATCH_PARTS", "bench_app", "parse_parts"]

bench_app = typer.Typer(help="Benchmarks that print figures.", no_args_is_help=True)

contract_cli.register(bench_app)  # contract
engine_cli.register(bench_app)  # dispatch, congestion, study
store_cli.register(bench_app)  # ingest, ingest-store, store
fleet_cli.register(bench_app)  # loop, testbed
register_chain(bench_app, console, figures_table)  # records, uftp, settlement, market, dr-selection
register_areas(bench_app)  # the MPC by area on 1 worker vs N
register_market_relief(bench_app)  # the market's relief per EUR on the twin, reference vs market per seed
