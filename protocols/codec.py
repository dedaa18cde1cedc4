"""Wire codec: `encode(msg) -> bytes`, `decode(topic, payload) -> Message`.

`decode` is the one door every inbound payload goes through. Whatever is wrong
(bad JSON, unknown schema version, schema violation, topic/payload mismatch,
oversize) comes out as one `ContractError` with a readable reason; nothing else
escapes, so receive loops can log, publish an event and carry on.
"""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ValidationError

from protocols.errors import ContractError
from protocols.messages import (
    Ack,
    Command,
    DRRequest,
    Event,
    FlexEnvelope,
    Message,
    SiteState,
    Stored,
    TelemetryBatch,
)
from protocols.topics import TopicKind, parse

__all__ = ["MAX_PAYLOAD_BYTES", "MODEL_BY_KIND", "decode", "encode"]

MAX_PAYLOAD_BYTES: Final = 512 * 1024

MODEL_BY_KIND: Final[dict[TopicKind, type[BaseModel]]] = {
    TopicKind.STATE: SiteState,
    TopicKind.TELEMETRY: TelemetryBatch,
    TopicKind.FLEX: FlexEnvelope,
    TopicKind.CMD: Command,
    TopicKind.ACK: Ack,
    TopicKind.EVENT: Event,
    TopicKind.STORED: Stored,
    TopicKind.DR_REQUEST: DRRequest,
}


def encode(msg: Message) -> bytes:
    """Serialise a message to compact JSON bytes (None fields kept: explicit beats implicit)."""
    return msg.model_dump_json().encode()


def decode(topic: str, payload: bytes | bytearray | str) -> Message:
    """Validate `payload` received on `topic` into its message model, or raise `ContractError`."""
    try:
        parsed = parse(topic)
    except ValueError as exc:
        raise ContractError(str(exc), topic=topic) from None
    if isinstance(payload, str):
        payload = payload.encode()
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}", topic=topic)
    model = MODEL_BY_KIND[parsed.kind]
    try:
        msg: Message = model.model_validate_json(payload)  # type: ignore[assignment]
    except ValidationError as exc:
        raise ContractError(_reason(exc), topic=topic) from None
    except (ValueError, TypeError, RecursionError) as exc:  # defensive: pydantic wraps almost all
        raise ContractError(f"undecodable payload: {exc}", topic=topic) from None
    if isinstance(msg, DRRequest):
        if msg.program != parsed.program:
            raise ContractError(f"payload program {msg.program!r} does not match topic", topic=topic)
    elif msg.site != parsed.site:
        raise ContractError(
            f"payload site {msg.site!r} does not match topic site {parsed.site!r}", topic=topic
        )
    return msg


def _reason(exc: ValidationError) -> str:
    """Turn pydantic's error list into one line a person can act on."""
    errors = exc.errors(include_url=False, include_input=False)
    for err in errors:
        if err["type"] == "json_invalid":
            return f"invalid JSON: {err['msg']}"
        if err["loc"] == ("v",):
            return "unsupported schema version (this side speaks v=1)"
    parts = []
    for err in errors[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{loc}: {err['msg']}")
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return "schema violation: " + "; ".join(parts) + more
