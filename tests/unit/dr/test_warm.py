"""The whole LP warm-started from the fixed-share blocks' sum (`cloud_controller.dr.warm`) against the whole LP.

Met, partial and mixed-direction day-long requests on small seeded portfolios: whichever
route answers (`lp-warm-certified` when the shares are not certified, `blocks-certified`
when they are) gives the whole LP's objective, its LP objective with the unmet kWh priced
and its total unmet, and its own kW pass the recomputed step balance, caps and SOC path.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from cloud_controller.dr import SelectionOptions, select
from cloud_controller.dr.blocks import solve_by_blocks
from cloud_controller.dr.inputs import inputs_of
from cloud_controller.dr.matrix import build_milp
from cloud_controller.dr.selection import _solve_inputs
from cloud_controller.dr.warm import warm_point
from cloud_controller.highs.quiet import quiet_highs
from gridflex.bench.dr_selection import portfolio
from tests.unit.dr.test_prices import WHOLE, _assert_same, _caps, _request

SHARES = SelectionOptions(decompose="shares", block_sources=8)
N_STEPS = 48


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_met_day_warm_started_from_the_blocks_is_the_whole_lps_optimum(seed: int) -> None:
    sources = portfolio(8, N_STEPS, seed=seed)
    red, _ = _caps(sources)
    request = _request(sources, -0.05 * red)
    warm = select(request, sources, options=SHARES)
    whole = select(request, sources, options=WHOLE)
    assert warm.route == "lp-warm-certified", warm.notes
    assert warm.fallbacks == 1  # the shares were tried and not certified
    assert warm.notes[0].startswith("blocks not certified (the blocks' step prices differ")
    assert warm.notes[0].endswith("warm-started from their sum")
    assert warm.status == "full"
    _assert_same(warm, whole, request, sources)
    assert warm.objective_value > 1.0


@pytest.mark.parametrize("seed", [1, 2])
def test_a_partial_day_stays_certified_by_the_blocks(seed: int) -> None:
    sources = portfolio(8, N_STEPS, seed=seed)
    red, _ = _caps(sources)
    request = _request(sources, -0.9 * red)
    sel = select(request, sources, options=SHARES)
    whole = select(request, sources, options=WHOLE)
    assert sel.route == "blocks-certified" and sel.fallbacks == 0
    _assert_same(sel, whole, request, sources)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_mixed_direction_day_is_the_whole_lps_optimum(seed: int) -> None:
    sources = portfolio(8, N_STEPS, seed=seed)
    red, inc = _caps(sources)
    target = np.where(np.arange(N_STEPS) < N_STEPS // 2, -0.3 * red, 0.2 * inc)
    target[3] = -1.2 * red[3]  # beyond the portfolio: part of it unmet
    request = _request(sources, target)
    sel = select(request, sources, options=SHARES)
    whole = select(request, sources, options=WHOLE)
    assert sel.route == "lp-warm-certified", sel.notes
    assert sel.status == "partial"
    _assert_same(sel, whole, request, sources)


def test_without_warm_start_the_shares_fail_fast_and_the_crash_lp_answers() -> None:
    sources = portfolio(8, N_STEPS, seed=1)
    red, _ = _caps(sources)
    request = _request(sources, -0.05 * red)
    cold = select(
        request, sources, options=SelectionOptions(decompose="shares", block_sources=8, warm_start=False)
    )
    assert cold.route == "lp-certified" and cold.fallbacks == 1
    assert "(block 2 of 4)" in cold.notes[0]


def test_a_failed_warm_start_is_counted_and_the_whole_lp_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bookkeeping of a warm start that gives up (no basis, not optimal, not integral)."""
    from cloud_controller.dr import selection

    monkeypatch.setattr(selection, "solve_warm", lambda *a, **k: (None, "the crossover found no basis"))
    sources = portfolio(8, N_STEPS, seed=2)
    red, _ = _caps(sources)
    request = _request(sources, -0.05 * red)
    sel = select(request, sources, options=SHARES)
    whole = select(request, sources, options=WHOLE)
    assert sel.route == "lp-certified" and sel.fallbacks == 2
    assert "the crossover found no basis: the whole LP answers" in sel.notes[0]
    assert sel.objective_value == pytest.approx(whole.objective_value, rel=1e-9)


def test_the_warm_point_keeps_every_row_and_bound_of_the_whole_lp() -> None:
    sources = portfolio(8, N_STEPS, seed=3)
    red, _ = _caps(sources)
    x = inputs_of(_request(sources, -0.05 * red), sources, (), ())
    blocks = solve_by_blocks(x, 8, lambda sub: _solve_inputs(sub, SHARES, crash=True), fail_fast=False)
    assert blocks.solved is None and blocks.point is not None  # not certified, the sum handed back
    h = quiet_highs()
    ix = build_milp(x, h, keep_matrix=True)
    net = blocks.point.up_kw - blocks.point.dn_kw
    col = warm_point(x, ix, np.maximum(net, 0.0), np.maximum(-net, 0.0))
    lp = h.getLp()
    a = sparse.csc_matrix(
        (lp.a_matrix_.value_, lp.a_matrix_.index_, lp.a_matrix_.start_), shape=(ix.n_rows, ix.n_cols)
    )
    act = a @ col
    assert np.all(act >= np.asarray(lp.row_lower_) - 1e-7) and np.all(act <= np.asarray(lp.row_upper_) + 1e-7)
    assert np.all(col >= np.asarray(lp.col_lower_) - 1e-7) and np.all(col <= np.asarray(lp.col_upper_) + 1e-7)
    np.testing.assert_allclose(col[ix.unmet], 0.0, atol=1e-7)  # the blocks meet their shares: nothing unmet
