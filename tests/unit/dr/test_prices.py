"""The selection by blocks coordinated by step prices (`cloud_controller.dr.prices`) against the whole LP.

Met, partial and mixed-direction requests on small seeded portfolios: the certified
answer (route `prices-certified`) must give the whole LP's objective, its LP objective
with the unmet kWh priced in, and its unmet kW per step; a round budget too small for
the certificate must fall back to the whole LP, counted and said.
"""

from __future__ import annotations

import numpy as np
import pytest

from cloud_controller.dr import Objective, Selection, SelectionOptions, SelectionRequest, Source, select
from cloud_controller.dr.inputs import inputs_of, source_costs, unmet_cost
from gridflex.bench.dr_selection import portfolio

PRICES = SelectionOptions(decompose="prices", block_sources=8, price_rounds=200)
WHOLE = SelectionOptions(decompose="never")
N_STEPS = 8


def _request(
    sources: list[Source], target_kw: np.ndarray, objective: Objective = "min_cost"
) -> SelectionRequest:
    return SelectionRequest(target_kw=target_kw, dt_h=0.25, objective=objective, loss_price_eur_per_kwh=0.3)


def _caps(sources: list[Source]) -> tuple[np.ndarray, np.ndarray]:
    red = np.sum([np.asarray(s.reduce_max_kw) for s in sources], axis=0)
    inc = np.sum([np.asarray(s.increase_max_kw) for s in sources], axis=0)
    return red, inc


def _lp_objective(sel: Selection, request: SelectionRequest, sources: list[Source]) -> float:
    """What the LP minimises, recomputed from the answer's kW: the sources' costs plus every unmet kW at its price."""
    x = inputs_of(request, sources, (), ())
    c_up, c_dn = source_costs(x)
    kw = np.array([sel.flex_kw[s.site, s.asset] for s in sources])
    return float(
        (c_up * np.maximum(kw, 0)).sum() + (c_dn * np.maximum(-kw, 0)).sum() + unmet_cost(x) @ sel.unmet_kw
    )


def _assert_same(a: Selection, b: Selection, request: SelectionRequest, sources: list[Source]) -> None:
    """Same status, objective, LP objective and total unmet; per step only where the optimum fixes it.

    A partial request's unmet kW per step is not unique: a battery's last kWh can serve
    either of two short steps at the same price, so two optimal answers may leave
    different steps short by the same total. What is unique is checked here; each answer's
    own feasibility is checked by `_assert_feasible`.
    """
    assert a.status == b.status
    assert a.objective_value == pytest.approx(b.objective_value, rel=1e-6, abs=1e-6)
    lp_a, lp_b = _lp_objective(a, request, sources), _lp_objective(b, request, sources)
    assert lp_a == pytest.approx(lp_b, rel=1e-6)
    assert a.unmet_kw.sum() == pytest.approx(b.unmet_kw.sum(), rel=1e-6, abs=1e-5)
    if b.status == "full":
        np.testing.assert_allclose(a.unmet_kw, b.unmet_kw, atol=1e-6)
    _assert_feasible(a, request, sources)


def _assert_feasible(sel: Selection, request: SelectionRequest, sources: list[Source]) -> None:
    """The answer, recomputed from its own kW: step balance, caps, SOC inside its floor and ceiling."""
    target = np.asarray(request.target_kw)
    net = sum(sel.flex_kw.values())
    np.testing.assert_allclose(np.sign(target) * net + sel.unmet_kw, np.abs(target), atol=1e-5)
    for s in sources:
        kw = sel.flex_kw[s.site, s.asset]
        assert np.all(kw <= np.asarray(s.increase_max_kw) + 1e-6)
        assert np.all(-kw <= np.asarray(s.reduce_max_kw) + 1e-6)
        if s.battery is not None:
            b = s.battery
            e = b.e_start_kwh + np.cumsum(
                np.maximum(kw, 0) * b.eta_charge * request.dt_h
                - np.maximum(-kw, 0) / b.eta_discharge * request.dt_h
            )
            assert np.all(e >= b.e_min_kwh - 1e-6) and np.all(e <= b.e_max_kwh + 1e-6)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_met_request_priced_by_blocks_is_the_whole_lps_optimum(seed: int) -> None:
    sources = portfolio(8, N_STEPS, seed=seed)
    red, _ = _caps(sources)
    request = _request(sources, -0.3 * red)
    priced = select(request, sources, options=PRICES)
    whole = select(request, sources, options=WHOLE)
    assert priced.route == "prices-certified", priced.notes
    assert priced.fallbacks == 0
    assert priced.notes[0].startswith("4 blocks priced in")  # 8 buildings × 4 sources in blocks of 8
    assert priced.status == "full"
    _assert_same(priced, whole, request, sources)
    assert priced.objective_value > 1.0  # € of a real selection, not an empty one


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_partial_request_priced_by_blocks_is_the_whole_lps_optimum(seed: int) -> None:
    sources = portfolio(8, 16, seed=seed)
    red, _ = _caps(sources)
    request = _request(sources, -0.9 * red)
    priced = select(request, sources, options=PRICES)
    whole = select(request, sources, options=WHOLE)
    assert priced.route == "prices-certified", priced.notes
    assert priced.status == "partial"
    assert priced.unmet_kw.sum() > 10.0
    _assert_same(priced, whole, request, sources)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_mixed_direction_request_priced_by_blocks_is_the_whole_lps_optimum(seed: int) -> None:
    sources = portfolio(8, N_STEPS, seed=seed)
    red, inc = _caps(sources)
    # reduce in the first half (part of it unmet at the peak), increase in the second
    target = np.where(np.arange(N_STEPS) < N_STEPS // 2, -0.4 * red, 0.3 * inc)
    target[1] = -0.95 * red[1]
    request = _request(sources, target)
    priced = select(request, sources, options=PRICES)
    whole = select(request, sources, options=WHOLE)
    assert priced.route == "prices-certified", priced.notes
    _assert_same(priced, whole, request, sources)
    net = np.sum(list(priced.flex_kw.values()), axis=0)
    assert np.all(net[: N_STEPS // 2] < 0) and np.all(net[N_STEPS // 2 :] > 0)


def test_the_flexibility_objective_priced_by_blocks() -> None:
    sources = portfolio(8, N_STEPS, seed=7)
    red, _ = _caps(sources)
    request = _request(sources, -0.6 * red, "flexibility")
    priced = select(request, sources, options=PRICES)
    whole = select(request, sources, options=WHOLE)
    assert priced.route == "prices-certified", priced.notes
    _assert_same(priced, whole, request, sources)


def test_too_few_rounds_fall_back_to_the_whole_lp_counted_and_said() -> None:
    sources = portfolio(8, N_STEPS, seed=1)
    red, _ = _caps(sources)
    request = _request(sources, -0.3 * red)
    one_round = SelectionOptions(decompose="prices", block_sources=8, price_rounds=1)
    sel = select(request, sources, options=one_round)
    whole = select(request, sources, options=WHOLE)
    assert sel.route == "lp-certified"
    assert sel.fallbacks == 1
    assert sel.notes[0].startswith("prices not certified (no certificate after 1 rounds")
    assert sel.notes[0].endswith("the whole LP answers")
    assert sel.objective_value == pytest.approx(whole.objective_value, rel=1e-9)
    assert whole.fallbacks == 0


def test_an_on_off_source_mixed_in_part_is_not_claimed() -> None:
    """The pricing LPs relax on/off binaries; a mix that runs one in part must go to the whole MILP."""
    sources = portfolio(4, 4, seed=2)
    on_off = [
        Source(
            site=f"x{i}",
            asset="load",
            kind="load",
            reduce_max_kw=np.full(4, 7.0),
            increase_max_kw=np.zeros(4),
            cost_eur_per_kwh=0.01,
            partial=False,
        )
        for i in range(2)
    ]
    sources = sources + on_off
    request = _request(sources, np.full(4, -10.0))  # cheapest: one 7 kW load plus 3 kW of the rest
    sel = select(
        request, sources, options=SelectionOptions(decompose="prices", block_sources=4, price_rounds=200)
    )
    whole = select(request, sources, options=WHOLE)
    assert sel.objective_value == pytest.approx(whole.objective_value, rel=1e-6)
    loads = [sel.flex_kw[f"x{i}", "load"] for i in range(2)]
    for kw in loads:  # all or nothing, whichever route answered
        assert np.all((np.abs(kw) < 1e-6) | (np.abs(kw + 7.0) < 1e-6))
    assert sel.route == "milp"  # the mix used a load in part: the whole MILP answered
    assert sel.fallbacks == 1
    assert (
        sel.notes[0] == "prices not certified (the mix runs an on/off source in part): the whole LP answers"
    )


def test_feeder_rows_keep_the_whole_lp_without_a_fallback() -> None:
    from cloud_controller.dr import Feeder

    sources = portfolio(8, N_STEPS, seed=1)
    red, _ = _caps(sources)
    feeder = Feeder("f1", frozenset({"b0000", "b0001"}), np.full(N_STEPS, 50.0), np.full(N_STEPS, 50.0))
    sel = select(_request(sources, -0.3 * red), sources, feeders=[feeder], options=PRICES)
    assert sel.route == "lp-certified"
    assert (sel.fallbacks, sel.notes) == (0, ())
