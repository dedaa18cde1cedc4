"""Contract checks: each rule refuses on its own and names itself; contracts persist across a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from cloud_controller.dr.contracts import RULES, Contract, check_request, eligible_sites
from cloud_controller.dr.store import DrStore
from protocols.messages import DRRequest

T0 = datetime(2030, 1, 15, 17, 0, tzinfo=UTC)


def contract(site: str = "b001", **kw: Any) -> Contract:
    base: dict[str, object] = {
        "site": site,
        "program": "peak",
        "directions": {"reduce"},
        "p_max_kw": 20.0,
        "events_per_day": 2,
        "max_duration": timedelta(hours=2),
        "min_notice": timedelta(minutes=30),
        "valid_from": T0 - timedelta(days=30),
        "valid_until": T0 + timedelta(days=30),
    }
    base.update(kw)
    return Contract.model_validate(base)


def request(**kw: object) -> DRRequest:
    base: dict[str, object] = {
        "program": "peak",
        "ts": T0 - timedelta(hours=1),
        "request_id": "r1",
        "start": T0,
        "end": T0 + timedelta(hours=1),
        "direction": "reduce",
        "p_kw": 50.0,
    }
    base.update(kw)
    return DRRequest.model_validate(base)


def test_a_request_inside_every_rule_is_accepted() -> None:
    assert check_request(contract(), request(), events_that_day=1).accepted


@pytest.mark.parametrize(
    ("rule", "req", "con", "events"),
    [
        ("program", {"program": "star"}, {}, 0),
        ("window", {"start": T0 + timedelta(days=31), "end": T0 + timedelta(days=31, hours=1)}, {}, 0),
        ("duration", {"end": T0 + timedelta(hours=3)}, {}, 0),
        ("notice", {"ts": T0 - timedelta(minutes=10)}, {}, 0),
        ("count", {}, {}, 2),
        ("direction", {"direction": "increase"}, {}, 0),
    ],
    ids=list(RULES),
)
def test_each_rule_refuses_and_names_itself(
    rule: str, req: dict[str, Any], con: dict[str, Any], events: int
) -> None:
    verdict = check_request(contract(**con), request(**req), events_that_day=events)
    assert not verdict.accepted
    assert [r.rule for r in verdict.refusals] == [rule]
    assert verdict.refusals[0].reason


def test_eligible_sites_splits_accepted_from_refused_and_skips_other_programmes() -> None:
    contracts = [
        contract("b001"),
        contract("b002", directions={"increase"}),
        contract("b003", program="star"),
    ]
    accepted, refused = eligible_sites(contracts, request(), events_that_day={})
    assert [c.site for c in accepted] == ["b001"]
    assert [(e.site, e.refusals[0].rule) for e in refused] == [("b002", "direction")]


def test_bad_contract_is_refused_with_the_key() -> None:
    with pytest.raises(ValidationError, match="weight"):
        contract(weight=3.0)
    with pytest.raises(ValidationError, match="comfort band"):
        contract(comfort_t_min_c=26.0)


def test_contracts_and_event_counts_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "controller.sqlite"
    store = DrStore(path)
    store.put_contract(contract("b001"))
    store.put_contract(contract("b002", weight=1.5))
    store.put_contract(contract("b002", weight=2.0))  # replaces
    store.record_event("r1", "b001", "peak", T0, T0 + timedelta(hours=1))
    store.record_event("r1", "b001", "peak", T0, T0 + timedelta(hours=1))  # idempotent
    store.record_event("r0", "b001", "peak", T0 - timedelta(days=1), T0 - timedelta(days=1, hours=-1))
    store.close()

    reopened = DrStore(path)
    assert [(c.site, c.weight) for c in reopened.contracts("peak")] == [("b001", None), ("b002", 2.0)]
    assert reopened.events_on_day("peak", T0) == {"b001": 1}
    assert reopened.delete_contract("b002", "peak")
    assert [c.site for c in reopened.contracts()] == ["b001"]
    reopened.close()
