"""The selection by blocks of sites (`cloud_controller.dr.blocks`) against the whole LP.

A day-long request the portfolio cannot meet prices every step at the unmet price in
every block, so the blocks' answer is certified and must give the whole LP's objective
and unmet kWh; a request the portfolio meets is not certified and the whole LP answers.
"""

from __future__ import annotations

import numpy as np
import pytest

from cloud_controller.dr import (
    Feeder,
    Objective,
    SelectionOptions,
    SelectionRequest,
    SiteLimit,
    Source,
    select,
)
from cloud_controller.dr.blocks import blocks_of, shares_of
from cloud_controller.dr.inputs import inputs_of
from gridflex.bench.dr_selection import portfolio

BLOCKS = SelectionOptions(decompose="always", block_sources=8)
WHOLE = SelectionOptions(decompose="never")


def _request(sources: list[Source], share: float, objective: Objective = "min_cost") -> SelectionRequest:
    reduce_kw = np.sum([np.asarray(s.reduce_max_kw) for s in sources], axis=0)
    return SelectionRequest(
        target_kw=-share * reduce_kw, dt_h=0.25, objective=objective, loss_price_eur_per_kwh=0.3
    )


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_blocks_give_the_whole_lps_objective_and_unmet_kwh(seed: int) -> None:
    sources = portfolio(8, 48, seed=seed)
    request = _request(sources, 0.5)
    blocks = select(request, sources, options=BLOCKS)
    whole = select(request, sources, options=WHOLE)
    assert blocks.route == "blocks-certified"
    assert whole.route == "lp-certified"
    assert blocks.status == whole.status == "partial"
    assert blocks.objective_value == pytest.approx(whole.objective_value, rel=1e-6)
    assert blocks.unmet_kw.sum() * 0.25 == pytest.approx(whole.unmet_kw.sum() * 0.25, rel=1e-6)
    assert blocks.unmet_kw.sum() > 100.0  # kW·steps: a partial answer, not a trivial one
    assert blocks.notes[0].startswith("4 blocks")  # 8 buildings × 4 sources in blocks of 8 sources


def test_blocks_keep_the_site_limits_and_the_flexibility_objective() -> None:
    sources = portfolio(8, 48, seed=6)
    limits = [SiteLimit(site=f"b{i:04d}", p_max_kw=4.0) for i in range(8)]
    request = _request(sources, 0.5, "flexibility")
    blocks = select(request, sources, limits=limits, options=BLOCKS)
    whole = select(request, sources, limits=limits, options=WHOLE)
    assert blocks.route == "blocks-certified"
    assert blocks.objective_value == pytest.approx(whole.objective_value, rel=1e-6)
    per_site: dict[str, np.ndarray] = {}
    for (site, _), kw in blocks.flex_kw.items():
        per_site[site] = per_site.get(site, np.zeros(48)) + np.abs(kw)
    assert max(float(v.max()) for v in per_site.values()) <= 4.0 + 1e-6


def test_a_request_the_portfolio_meets_is_not_certified_and_the_whole_lp_answers() -> None:
    sources = portfolio(8, 16, seed=1)
    request = _request(sources, 0.2)
    cold = SelectionOptions(decompose="always", block_sources=8, warm_start=False)  # warm: test_warm.py
    blocks = select(request, sources, options=cold)
    whole = select(request, sources, options=WHOLE)
    assert blocks.status == "full"
    assert blocks.route == "lp-certified"
    assert blocks.notes[0].startswith("blocks not certified (the blocks' step prices differ")
    assert "(block 2 of 4)" in blocks.notes[0]  # stopped at the first block whose prices differ
    assert blocks.fallbacks == 1 and whole.fallbacks == 0
    assert blocks.objective_value == pytest.approx(whole.objective_value, rel=1e-9)


def test_feeder_rows_keep_the_whole_lp() -> None:
    sources = portfolio(8, 48, seed=1)
    feeder = Feeder("f1", frozenset({"b0000", "b0001"}), np.full(48, 50.0), np.full(48, 50.0))
    sel = select(_request(sources, 0.5), sources, feeders=[feeder], options=BLOCKS)
    assert sel.route == "lp-certified"
    assert sel.notes == ()


def test_auto_decomposes_only_from_its_size_on() -> None:
    sources = portfolio(8, 48, seed=2)
    request = _request(sources, 0.5)
    assert select(request, sources).route == "lp-certified"  # 1,536 source-steps < 100,000
    small = SelectionOptions(block_sources=8, decompose_min_cells=8 * 4 * 48)
    assert select(request, sources, options=small).route == "blocks-certified"


def test_blocks_hold_whole_sites_and_their_shares_add_up_to_the_request() -> None:
    sources = portfolio(5, 8, seed=1)
    x = inputs_of(_request(sources, 0.5), sources, (), ())
    blocks = blocks_of(x, 6)
    assert [b.size for b in blocks] == [8, 8, 4]  # sites of 4 sources, closed once 6 are reached
    assert sorted(np.concatenate(blocks).tolist()) == list(range(20))
    for b in blocks:
        assert len({int(s) for s in x.site_of[b]}) == b.size // 4
    shares = shares_of(x, blocks)
    np.testing.assert_allclose(np.sum(shares, axis=0), x.target_abs_kw, rtol=1e-12)
    caps = x.dn_max[blocks[2]].sum(axis=0) / x.dn_max.sum(axis=0)
    np.testing.assert_allclose(shares[2], x.target_abs_kw * caps, rtol=1e-12)
