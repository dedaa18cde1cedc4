"""Every message round-trips; validation is strict; schemas are generated and valid."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from protocols import ContractError, decode, encode
from protocols.codec import MODEL_BY_KIND
from protocols.examples import examples
from protocols.messages import Command, Sample, TelemetryBatch
from protocols.topics import site_topic

EXAMPLES = examples()


@pytest.mark.parametrize(("topic", "msg"), EXAMPLES, ids=[type(m).__name__ for _, m in EXAMPLES])
def test_every_message_round_trips_unchanged(topic, msg) -> None:
    assert decode(topic, encode(msg)) == msg


def test_examples_cover_every_topic_kind() -> None:
    assert {type(m) for _, m in EXAMPLES} == set(MODEL_BY_KIND.values())


@pytest.mark.parametrize("model", list(MODEL_BY_KIND.values()), ids=lambda m: m.__name__)
def test_json_schema_is_valid_and_accepts_the_example(model) -> None:
    schema = model.model_json_schema(mode="serialization")
    Draft202012Validator.check_schema(schema)
    (example,) = [m for _, m in EXAMPLES if type(m) is model]
    Draft202012Validator(schema).validate(json.loads(encode(example)))


def _telemetry(**sample_overrides: object) -> dict[str, object]:
    sample = {
        "seq": 1,
        "asset": "pv1",
        "point": "p_kw",
        "value": -1.5,
        "unit": "kW",
        "ts": "2030-01-01T00:00:00Z",
    }
    sample.update(sample_overrides)
    return {"v": 1, "site": "b001", "ts": "2030-01-01T00:00:00Z", "msg_id": "m", "samples": [sample]}


TOPIC = site_topic("b001", "telemetry")


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"value": "1.5"}, "valid number"),
        ({"value": True}, "valid number"),
        ({"ts": "2030-01-01T00:00:00"}, "timezone"),
        ({"seq": -1}, "greater than or equal"),
        ({"asset": "PV/1"}, "pattern"),
        ({"quality": "great"}, "quality"),
        ({"value": None}, "needs a value"),
        ({"extra": 1}, "Extra inputs"),
    ],
    ids=[
        "string-number",
        "bool-number",
        "naive-ts",
        "negative-seq",
        "bad-asset",
        "bad-quality",
        "good-without-value",
        "extra-field",
    ],
)
def test_strict_validation_refuses_with_a_readable_reason(override, reason) -> None:
    with pytest.raises(ContractError, match=reason):
        decode(TOPIC, json.dumps(_telemetry(**override)))


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_floats_are_refused(literal: str) -> None:
    raw = json.dumps(_telemetry(value=0.0)).replace('"value": 0.0', f'"value": {literal}')
    with pytest.raises(ContractError):
        decode(TOPIC, raw)


def test_timestamps_are_normalised_to_utc() -> None:
    msg = decode(TOPIC, json.dumps(_telemetry(ts="2030-01-01T01:00:00+01:00")))
    assert isinstance(msg, TelemetryBatch)
    assert msg.samples[0].ts == datetime(2030, 1, 1, tzinfo=UTC)
    assert msg.samples[0].ts.utcoffset() == timedelta(0)


def test_unknown_schema_version_is_named() -> None:
    raw = _telemetry()
    raw["v"] = 2
    with pytest.raises(ContractError, match="unsupported schema version"):
        decode(TOPIC, json.dumps(raw))


def test_site_mismatch_between_topic_and_payload() -> None:
    with pytest.raises(ContractError, match="does not match topic site"):
        decode(site_topic("b002", "telemetry"), json.dumps(_telemetry()))


def test_bad_json_and_oversize_payloads() -> None:
    with pytest.raises(ContractError, match="invalid JSON"):
        decode(TOPIC, b"{not json")
    with pytest.raises(ContractError, match="exceeds"):
        decode(TOPIC, b" " * (600 * 1024))


def test_batch_seq_must_strictly_increase() -> None:
    ts = datetime(2030, 1, 1, tzinfo=UTC)
    sample = Sample(seq=5, asset="a", point="p_kw", value=1.0, unit="kW", ts=ts)
    with pytest.raises(ValueError, match="strictly increase"):
        TelemetryBatch(site="s", ts=ts, samples=[sample, sample])


def test_batch_size_is_bounded() -> None:
    raw = _telemetry()
    sample = raw["samples"][0]  # type: ignore[index]
    raw["samples"] = [{**sample, "seq": i} for i in range(2001)]
    with pytest.raises(ContractError, match="at most 2000"):
        decode(TOPIC, json.dumps(raw))


def test_command_consistency() -> None:
    ts = datetime(2030, 1, 1, tzinfo=UTC)
    base: dict[str, Any] = {"site": "s", "ts": ts, "cmd_id": "c1", "asset": "bat1", "valid_from": ts}
    with pytest.raises(ValueError, match="valid_until must be after"):
        Command(**base, kind="p_setpoint_kw", value=1.0, valid_until=ts)
    with pytest.raises(ValueError, match="needs a number"):
        Command(**base, kind="p_limit_kw", value="auto", valid_until=ts + timedelta(minutes=1))
    with pytest.raises(ValueError, match="mode name"):
        Command(**base, kind="mode", value=1.0, valid_until=ts + timedelta(minutes=1))


def test_contract_doc_shows_the_current_examples() -> None:
    """docs/contract.md must not drift from the models: every example payload appears verbatim."""
    from pathlib import Path

    doc = (Path(__file__).parents[3] / "docs" / "contract.md").read_text()
    for topic, msg in EXAMPLES:
        assert f"`{topic}`" in doc
        assert json.dumps(json.loads(msg.model_dump_json()), indent=2) in doc, type(msg).__name__
