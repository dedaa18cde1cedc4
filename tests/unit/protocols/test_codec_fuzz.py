"""Property tests: `decode` raises nothing but ContractError and never returns an invalid message."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols import ContractError, decode, encode
from protocols.examples import examples

EXAMPLES = examples()
TOPICS = [topic for topic, _ in EXAMPLES]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


def _assert_valid_or_contract_error(topic: str, payload: bytes) -> None:
    try:
        msg = decode(topic, payload)
    except ContractError as exc:
        assert exc.reason  # every refusal says why
        return
    # Whatever got through must survive its own schema again, unchanged.
    assert decode(topic, encode(msg)) == msg


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(topic=st.sampled_from(TOPICS), payload=st.binary(max_size=512))
def test_random_bytes(topic: str, payload: bytes) -> None:
    _assert_valid_or_contract_error(topic, payload)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(topic=st.sampled_from(TOPICS), value=json_values)
def test_random_json(topic: str, value: Any) -> None:
    _assert_valid_or_contract_error(topic, json.dumps(value).encode())


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for key, val in obj.items():
            out += _paths(val, (*prefix, key))
    elif isinstance(obj, list):
        for i, val in enumerate(obj):
            out += _paths(val, (*prefix, i))
    return out


def _set(obj: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), index=st.integers(min_value=0, max_value=len(EXAMPLES) - 1))
def test_mutated_valid_messages(data: st.DataObject, index: int) -> None:
    topic, msg = EXAMPLES[index]
    body = json.loads(encode(msg))
    path = data.draw(st.sampled_from(_paths(body)))
    mutation = data.draw(json_values | st.sampled_from(["", "NaN", -1, 2**64, 1e308, "2030-01-01T00:00:00"]))
    _set(body, path, mutation)
    _assert_valid_or_contract_error(topic, json.dumps(body).encode())


@given(topic=st.sampled_from(TOPICS), cut=st.integers(min_value=0, max_value=400))
def test_truncated_payloads(topic: str, cut: int) -> None:
    (msg,) = [m for t, m in EXAMPLES if t == topic]
    _assert_valid_or_contract_error(topic, encode(msg)[:cut])
