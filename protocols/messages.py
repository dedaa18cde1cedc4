"""Pydantic models of every message on the wire (schema version 1).

Validation is strict on purpose: a string never becomes a number, floats must be
finite, timestamps must carry a timezone (stored as UTC), lists and strings are
bounded, unknown fields are refused. A message that passes here is safe to act on.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Final, Literal, Self

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from protocols.topics import ID_PATTERN

__all__ = [
    "FAN_SPEED_PCT",
    "MAX_BATCH_SAMPLES",
    "SCHEMA_VERSION",
    "SITE_COMMAND_KINDS",
    "SITE_IMPORT_MAX_KW",
    "Ack",
    "AckStatus",
    "AssetFlex",
    "AssetId",
    "Command",
    "CommandKind",
    "DRInterval",
    "DRObjective",
    "DRRequest",
    "Event",
    "FlexEnvelope",
    "FlexInterval",
    "KeyId",
    "Message",
    "Quality",
    "Sample",
    "SiteId",
    "SiteState",
    "Stored",
    "TelemetryBatch",
    "new_msg_id",
    "utc_now",
]

SCHEMA_VERSION: Final = 1
MAX_BATCH_SAMPLES = 2_000
MAX_TEXT = 512
MAX_FLEX_INTERVALS = 192  # 48 h of 15-min intervals


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


SiteId = Annotated[str, Field(pattern=f"^{ID_PATTERN}$")]
AssetId = Annotated[str, Field(pattern=f"^{ID_PATTERN}$")]
PointName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
MsgId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]
#: A signing key's id (`kid`): lets a site hold the current and the next key during a rotation.
KeyId = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]
ShortText = Annotated[str, Field(max_length=64)]

Quality = Literal["good", "stale", "bad"]
AckStatus = Literal["applied", "clamped", "rejected", "expired", "failed"]
CommandKind = Literal[
    "p_limit_kw",
    "p_setpoint_kw",
    "soc_target_pct",
    "t_setpoint_c",
    "fan_speed_pct",
    "mode",
    "site_import_max_kw",
]
#: An AHU fan's speed command, in % of full speed (0-100): a demand-response write to the BMS,
#: like `t_setpoint_c` (the zone's setpoint in °C), held at the site's DR priority while valid.
FAN_SPEED_PCT: Final = "fan_speed_pct"
#: A DSO's dynamic site cap (§14a-style "dimming"): the most the whole site may import, in kW,
#: over the command's validity window. It is a site-level kind: addressed to the site's meter
#: asset (kind `meter`), it writes no register; the agent holds it with its own devices
#: (docs/contract.md, "Site caps").
SITE_IMPORT_MAX_KW: Final = "site_import_max_kw"
#: The command kinds addressed to the site as a whole (through its meter asset), not to one device.
SITE_COMMAND_KINDS: Final[frozenset[str]] = frozenset({SITE_IMPORT_MAX_KW})
Mode = Literal["auto", "self_consumption", "hold", "fallback"]
AssetKind = Literal["battery", "pv", "ev", "hp", "thermal_storage", "hvac", "meter", "load", "other"]


def _unset(value: object) -> bool:
    """`exclude_if` of `request_id`: left off the wire when unset (older agents refuse unknown keys)."""
    return value is None


def new_msg_id() -> str:
    """A fresh message id (uuid4 hex)."""
    return uuid.uuid4().hex


def utc_now() -> datetime:
    """Convenience for callers without a clock; components use their injected `Clock`."""
    return datetime.now(UTC)


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class _Envelope(_Strict):
    """Fields every message carries."""

    v: Literal[1] = 1
    site: SiteId
    ts: UtcDatetime
    msg_id: MsgId = Field(default_factory=new_msg_id)


class SiteState(_Envelope):
    """Retained on `state`; the agent's last will publishes `offline`.

    `degraded`: running and controllable, but a local fault (the queue file was corrupt
    and replaced, or the disk refuses writes) loses or has lost telemetry; `reason` says which.
    """

    status: Literal["online", "offline", "fallback", "degraded"]
    agent_version: ShortText = ""
    config_hash: ShortText = ""
    reason: Text | None = None


class Sample(_Strict):
    """One measured value. `seq` is the site's monotonically increasing sample number."""

    seq: int = Field(ge=0, le=2**63 - 1)
    asset: AssetId
    point: PointName
    value: Finite | None
    unit: ShortText
    ts: UtcDatetime
    quality: Quality = "good"
    reason: Text | None = None

    @model_validator(mode="after")
    def _value_unless_bad(self) -> Self:
        if self.value is None and self.quality == "good":
            raise ValueError("a sample of quality 'good' needs a value")
        return self


class TelemetryBatch(_Envelope):
    """A batch of samples with strictly increasing `seq` (the cloud dedupes by (site, seq))."""

    samples: list[Sample] = Field(min_length=1, max_length=MAX_BATCH_SAMPLES)

    @model_validator(mode="after")
    def _seq_increasing(self) -> Self:
        previous = -1
        for sample in self.samples:
            if sample.seq <= previous:
                raise ValueError(
                    f"sample seq must strictly increase within a batch (got {sample.seq} after {previous})"
                )
            previous = sample.seq
        return self

    @property
    def first_seq(self) -> int:
        """The batch's lowest sequence number (its first sample: seqs strictly increase)."""
        return self.samples[0].seq

    @property
    def last_seq(self) -> int:
        """The batch's highest sequence number (what a resend after it continues from)."""
        return self.samples[-1].seq


class FlexInterval(_Strict):
    """Feasible power range of one asset over [start, end)."""

    start: UtcDatetime
    end: UtcDatetime
    p_min_kw: Finite
    p_max_kw: Finite

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError("interval end must be after start")
        if self.p_min_kw > self.p_max_kw:
            raise ValueError(f"p_min_kw {self.p_min_kw} > p_max_kw {self.p_max_kw}")
        return self


class AssetFlex(_Strict):
    """One asset's flexibility: power bounds over a horizon, energy bounds, comfort limits."""

    asset: AssetId
    kind: AssetKind
    intervals: list[FlexInterval] = Field(default_factory=list, max_length=MAX_FLEX_INTERVALS)
    p_now_kw: Finite | None = None
    e_now_kwh: Finite | None = None
    e_min_kwh: Finite | None = None
    e_max_kwh: Finite | None = None
    soc_pct: Annotated[float, Field(ge=0, le=100)] | None = None
    t_min_c: Finite | None = None
    t_max_c: Finite | None = None
    p_guaranteed_min_kw: Finite | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.e_min_kwh is not None and self.e_max_kwh is not None and self.e_min_kwh > self.e_max_kwh:
            raise ValueError("e_min_kwh > e_max_kwh")
        if self.t_min_c is not None and self.t_max_c is not None and self.t_min_c > self.t_max_c:
            raise ValueError("t_min_c > t_max_c")
        return self


class FlexEnvelope(_Envelope):
    """Retained on `flex`: what every asset of the site can do over the next hours."""

    assets: list[AssetFlex] = Field(max_length=256)


class Command(_Envelope):
    """A setpoint for one asset, valid in [valid_from, valid_until); `sig` is an optional HMAC under key `kid`.

    `fence` is the dispatcher's fencing token (its lease's, growing with every change of
    dispatcher): an agent refuses a command whose token is lower than the highest it has
    seen, so a dispatcher that lost its lease cannot command equipment (docs/contract.md).

    `request_id` names the DR request a command activates (docs/dr.md), so its ack and the
    request's delivery link back to it. Optional and, when absent, left out of the signed
    bytes and of the wire (unlike the other optional fields, serialised as null): a
    command without it is byte for byte what it was before the field, so agents from
    before it accept it and its signature verifies unchanged.
    """

    cmd_id: MsgId
    asset: AssetId
    kind: CommandKind
    value: Finite | Mode
    valid_from: UtcDatetime
    valid_until: UtcDatetime
    priority: Annotated[int, Field(ge=1, le=16)] | None = None
    fence: Annotated[int, Field(ge=0, le=2**63 - 1)] | None = None
    kid: KeyId | None = None
    sig: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    request_id: MsgId | None = Field(default=None, exclude_if=_unset)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        if self.kind == "mode":
            if not isinstance(self.value, str):
                raise ValueError("a 'mode' command needs a mode name as value")
        elif isinstance(self.value, str):
            raise ValueError(f"a {self.kind!r} command needs a number as value")
        elif self.kind == FAN_SPEED_PCT and not 0.0 <= self.value <= 100.0:
            raise ValueError(f"a {FAN_SPEED_PCT!r} command needs a speed in [0, 100] %, not {self.value:g}")
        elif self.kind == SITE_IMPORT_MAX_KW and not self.value > 0:
            raise ValueError(
                f"a {SITE_IMPORT_MAX_KW!r} command needs a positive kW value, not {self.value:g}"
            )
        return self


class Ack(_Envelope):
    """The edge's answer to one command; `request_id` echoes the command's DR request (optional)."""

    cmd_id: MsgId
    asset: AssetId
    status: AckStatus
    requested: Finite | Mode | None = None
    applied_value: Finite | Mode | None = None
    read_back: Finite | None = None
    reason: Text | None = None
    request_id: MsgId | None = Field(default=None, exclude_if=_unset)


class Event(_Envelope):
    """Alarms and state changes: fallback entered/left, driver faults, queue drops, rejected input."""

    kind: ShortText
    severity: Literal["info", "warning", "error", "critical"] = "info"
    asset: AssetId | None = None
    message: Text = ""
    details: dict[ShortText, Finite | int | bool | ShortText | None] = Field(
        default_factory=dict, max_length=32
    )


class Stored(_Envelope):
    """Retained on `stored`: the highest contiguous telemetry seq the cloud has durably stored."""

    seq: int = Field(ge=-1, le=2**63 - 1)


DRObjective = Literal["flexibility", "financial", "bid_length", "power_peak", "min_cost"]


class DRInterval(_Strict):
    """One interval of a DR request: its kW and what it is worth (price, the seed's weight W, CO2 intensity).

    Intervals split the request's window into equal steps, in order; absent, the request
    asks `p_kw` over the whole window.
    """

    p_kw: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    price_eur_per_kwh: Finite | None = None
    weight: Annotated[float, Field(ge=0, le=2.5, allow_inf_nan=False)] | None = None
    co2_g_per_kwh: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None


class DRRequest(_Strict):
    """A demand-response request of a program (O'Connell & Keane 2021), retained on `dr/{program}/request`.

    It is addressed to a program, not a site, so it carries `program` (and optional
    target `sites`) where the site messages carry `site`. The fields after `sites` were
    added later and are all optional, so a v1 request without them is still valid: the
    selection's objective, per-interval kW and values, the seed's minimum bid power
    P_min, the notice and respond-by times, a contract reference and a service type.
    """

    v: Literal[1] = 1
    program: SiteId
    ts: UtcDatetime
    msg_id: MsgId = Field(default_factory=new_msg_id)
    request_id: MsgId
    start: UtcDatetime
    end: UtcDatetime
    direction: Literal["reduce", "increase"]
    p_kw: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    price_eur_per_kwh: Finite | None = None
    sites: list[SiteId] = Field(default_factory=list, max_length=10_000)
    objective: DRObjective | None = None  # default: the programme's (`flexibility`)
    intervals: list[DRInterval] = Field(default_factory=list, max_length=10_000)
    min_bid_kw: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    notice_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    respond_by: UtcDatetime | None = None
    contract: MsgId | None = None
    service_type: Annotated[str, Field(min_length=1, max_length=64)] | None = None

    @model_validator(mode="after")
    def _window(self) -> Self:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.respond_by is not None and self.respond_by > self.start:
            raise ValueError("respond_by must not be after start")
        return self


Message = SiteState | TelemetryBatch | FlexEnvelope | Command | Ack | Event | Stored | DRRequest
