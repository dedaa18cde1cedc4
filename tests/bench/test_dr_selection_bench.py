"""DR selection figures (marker `bench`, printed): the MILP at 1,000 buildings × 4 sources × 8 and 96 steps.

The measuring code is `gridflex.bench.dr_selection`; `gridflex bench dr-selection` prints
the same table. The smoke runs a small portfolio through both builders and checks they
agree, a small day through the blocks and the whole LP (same objective and unmet kWh), and a
small met day warm-started from the blocks against the whole LP; the full sizes print their figures against the targets (≤ 2 s, ≤ 10 s), no timed
assertion.

Run: `.venv/bin/pytest -m bench -s tests/bench/test_dr_selection_bench.py`
"""

from __future__ import annotations

import pytest

from gridflex.bench.dr_selection import bench_case, format_figures, run_dr_selection_bench, share_of

pytestmark = pytest.mark.bench


def test_dr_selection_smoke_both_builders_agree() -> None:
    fast, fast_sel = bench_case(40, 8)
    stated, stated_sel = bench_case(40, 8, builder="pyomo")
    print("\n" + format_figures([fast, stated]))
    assert fast_sel is not None and stated_sel is not None
    assert fast.status == stated.status == "full"
    assert stated_sel.objective_value == pytest.approx(fast_sel.objective_value, rel=1e-4)
    assert fast.route == "lp-certified"  # 8 steps stay on the whole LP (`decompose="auto"`)


def test_dr_selection_smoke_blocks_match_the_whole_lp_over_a_day() -> None:
    blocks, blocks_sel = bench_case(40, 96, method="shares")
    whole, whole_sel = bench_case(40, 96, method="never")
    print("\n" + format_figures([blocks, whole]))
    assert blocks_sel is not None and whole_sel is not None
    assert (blocks.route, whole.route) == ("blocks-certified", "lp-certified")
    assert blocks.status == whole.status == "partial"
    assert blocks_sel.objective_value == pytest.approx(whole_sel.objective_value, rel=1e-6)
    assert blocks.unmet_kwh == pytest.approx(whole.unmet_kwh, rel=1e-6)


def test_dr_selection_smoke_a_met_day_warm_started_matches_the_whole_lp() -> None:
    warm, warm_sel = bench_case(40, 96, share=share_of("met", 96), method="shares", case="met")
    whole, whole_sel = bench_case(40, 96, share=share_of("met", 96), method="whole", case="met")
    print("\n" + format_figures([warm, whole]))
    assert warm_sel is not None and whole_sel is not None
    assert (warm.route, whole.route) == ("lp-warm-certified", "lp-certified")
    assert warm.status == whole.status == "full"
    assert warm_sel.fallbacks == 1  # the shares, not certified on a met day
    assert warm_sel.objective_value == pytest.approx(whole_sel.objective_value, rel=1e-7)


@pytest.mark.timeout(1800)
def test_dr_selection_at_1000_buildings() -> None:
    figures = run_dr_selection_bench(1000, (8, 96))
    print("\n" + format_figures(figures))
    assert all(f.status in ("full", "partial", "timeout") for f in figures)


def test_dr_selection_smoke_prices_match_the_whole_lp_on_a_met_event() -> None:
    priced, priced_sel = bench_case(40, 8, method="prices", case="met")
    whole, whole_sel = bench_case(40, 8, method="whole-before", case="met")
    print("\n" + format_figures([priced, whole]))
    assert priced_sel is not None and whole_sel is not None
    assert (priced.route, whole.route) == ("prices-certified", "lp-certified")
    assert priced.status == whole.status == "full"
    assert priced_sel.objective_value == pytest.approx(whole_sel.objective_value, rel=1e-6)
