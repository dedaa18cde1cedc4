"""The contract between edge and cloud: topics, message models, codec, signing, units, clock, MQTT.

`protocols` is the only package both sides import; it depends on pydantic and aiomqtt only.
"""

from protocols.clock import Clock, RealClock, SimClock
from protocols.codec import decode, encode
from protocols.errors import ConfigError, ContractError, GridflexError
from protocols.messages import (
    Ack,
    AssetFlex,
    Command,
    DRRequest,
    Event,
    FlexEnvelope,
    FlexInterval,
    Message,
    Sample,
    SiteState,
    Stored,
    TelemetryBatch,
)

__all__ = [
    "Ack",
    "AssetFlex",
    "Clock",
    "Command",
    "ConfigError",
    "ContractError",
    "DRRequest",
    "Event",
    "FlexEnvelope",
    "FlexInterval",
    "GridflexError",
    "Message",
    "RealClock",
    "Sample",
    "SimClock",
    "SiteState",
    "Stored",
    "TelemetryBatch",
    "decode",
    "encode",
]
