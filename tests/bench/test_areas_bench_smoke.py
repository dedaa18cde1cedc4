"""`gridflex bench areas` end to end at a tiny size: every run measured, the same objective, the table says so."""

from __future__ import annotations

from gridflex.bench.dispatch.areas import format_area_scaling, run_area_scaling


def test_area_bench_runs_one_and_two_workers_to_the_same_optimum() -> None:
    seen: list[int] = []
    rows = run_area_scaling(30, 4, "serial", (1, 2), progress=lambda r: seen.append(r.workers))
    assert seen == [1, 2] and [r.workers for r in rows] == [1, 2]
    assert all(r.certified and r.n_areas == rows[0].n_areas > 1 for r in rows)
    assert abs(rows[1].objective - rows[0].objective) <= 1e-9 * abs(rows[0].objective)
    assert all(
        r.cold_s > 0 and r.warm_s > 0 and r.worker_cpu_s == () for r in rows
    )  # no processes: no worker CPU figure
    assert all(r.warm_cpu_s == () for r in rows)
    assert all(r.caller_cpu_s > 0 for r in rows)  # serial: the caller solved every area itself
    table = format_area_scaling(rows, "1.00 1.00 1.00")
    assert "caller cpu s" in table and "warm cpu max s" in table
    assert "30 buildings x 4 periods" in table and "load average 1.00" in table
    assert table.endswith("objectives equal within 1e-9 relative: True")
