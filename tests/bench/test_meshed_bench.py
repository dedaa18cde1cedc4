"""Meshed DC-OPF figures (`pytest -m bench -s tests/bench/test_meshed_bench.py`): ms per solve vs `pp.rundcopp`.

For each of pandapower's MATPOWER cases and the costed mv_oberrhein (docs/grid.md), in the
same run: the median of `repeats` timed calls of `pp.rundcopp(net)` and of
`solve_dc_opf(net)` (translation + HiGHS build + solve + read back, from the pandapower
net every time, as rundcopp does), the split of ours into translation and solve, the ratio,
and the largest objective / dispatch difference. A loose floor only: ours must not be slower.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pytest

from cloud_controller.grid import DcOpfOptions, dc_network_from_pandapower, solve_dc_opf
from cloud_controller.grid.meshed import solve_network
from protocols.errors import ConfigError
from tests.unit.grid.meshed.nets import CASES, case, oberrhein_with_costs, rundcopp, unit_p_mw

pytestmark = pytest.mark.bench

REPEATS = 5
PWL = DcOpfOptions(costs="pwl", pwl_max_error_eur=0.1)
NETS: list[tuple[str, Callable[[], Any]]] = [
    *[(name, (lambda n=name: case(n))) for name in CASES],
    ("mv_oberrhein", oberrhein_with_costs),
    ("mv_oberrhein closed", lambda: oberrhein_with_costs(close_all_switches=True)),
]


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # the first call warms imports and caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def test_meshed_dc_opf_vs_rundcopp_per_case() -> None:
    rows = []
    for name, make in NETS:
        net = make()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pp_ms = _median_ms(partial(rundcopp, net), REPEATS)
            ours_ms = _median_ms(partial(solve_dc_opf, net), REPEATS)
            tr_ms = _median_ms(partial(dc_network_from_pandapower, net), REPEATS)
            dn = dc_network_from_pandapower(net)
            solve_ms = _median_ms(partial(solve_network, dn), REPEATS)
            try:  # chords within 0.1 EUR in total; an island with two unbounded ext_grids has no finite range
                pwl_ms = _median_ms(partial(solve_dc_opf, net, PWL), REPEATS)
            except ConfigError:
                pwl_ms = float("nan")
        res = solve_dc_opf(net)
        rundcopp(net)
        d_obj = abs(res.objective_eur - float(net.res_cost)) / abs(float(net.res_cost))
        d_p = float(np.max(np.abs(res.p_mw - unit_p_mw(net, res.unit_names))))
        rows.append(
            (name, dn.n_bus, dn.n_branch, dn.n_unit, pp_ms, ours_ms, tr_ms, solve_ms, pwl_ms, d_obj, d_p)
        )
    print()
    print(
        f"{'case':22s} {'bus':>4s} {'br':>4s} {'unit':>4s} {'rundcopp':>9s} {'ours':>8s} {'transl.':>8s} "
        f"{'solve':>7s} {'pwl':>7s} {'ratio':>6s} {'d_obj rel':>9s} {'d_p MW':>8s}"
    )
    for name, nb, nl, ng, pp_ms, ours_ms, tr_ms, solve_ms, pwl_ms, d_obj, d_p in rows:
        print(
            f"{name:22s} {nb:4d} {nl:4d} {ng:4d} {pp_ms:7.1f}ms {ours_ms:6.1f}ms {tr_ms:6.1f}ms {solve_ms:5.1f}ms "
            f"{pwl_ms:5.1f}ms {pp_ms / ours_ms:5.1f}x {d_obj:9.1e} {d_p:8.1e}"
        )
    for row in rows:
        assert row[5] < row[4], f"{row[0]}: slower than rundcopp"
        assert row[9] < 1e-4 and row[10] < 1e-4
