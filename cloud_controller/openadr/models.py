"""OpenADR 3.1 objects as the VTN accepts them: camelCase JSON, validated field by field.

Why own models (no maintained library gives server-side 3.1 models for Python 3.11; the
ElaadNL client's models need 3.12 and are the client's view): what a writer may send is
validated here, and the server-set fields (`id`, `createdDateTime`, `modificationDateTime`,
`objectType`, `clientID` on reports, VENs and resources) are ignored on input and set by `resources.py`,
because the client cannot parse a reply without them. The top-level objects forbid unknown
keys, so a misspelt field is a 422 naming it; nested descriptors allow the spec's optional
fields (readingType, accuracy, confidence, ...) the VTN stores but does not interpret.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, NonNegativeInt
from pydantic.alias_generators import to_camel

__all__ = [
    "SERVER_FIELDS",
    "Event",
    "Interval",
    "IntervalPeriod",
    "Kind",
    "Program",
    "Report",
    "ReportResource",
    "Resource",
    "Subscription",
    "ValuesMap",
    "Ven",
]

Kind = Literal["programs", "events", "reports", "subscriptions", "vens", "resources"]

#: Set by the server; accepted on input (a client may PUT back what it read) and overwritten.
SERVER_FIELDS = ("id", "createdDateTime", "modificationDateTime", "objectType", "clientID")

Name = Field(min_length=1, max_length=128)


class _Obj(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class _Open(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class IntervalPeriod(_Obj):
    """Start (time-zone aware) and ISO 8601 duration; PT0S means instantaneous or unbounded."""

    start: AwareDatetime
    duration: timedelta
    randomize_start: timedelta | None = None


class ValuesMap(_Obj):
    """A typed list of values: an interval's payload, an attribute, a VEN's target."""

    type: str = Field(min_length=1, max_length=128)
    values: list[Any]


class Interval(_Obj):
    """One interval of an event or report: an integer id, its own period or the parent's, payloads."""

    id: int
    interval_period: IntervalPeriod | None = None
    payloads: list[ValuesMap] = Field(min_length=1)


class PayloadDescriptor(_Open):
    object_type: str | None = None
    payload_type: str = Field(min_length=1, max_length=128)
    units: str | None = None
    currency: str | None = None


class ReportDescriptor(_Open):
    payload_type: str = Field(min_length=1, max_length=128)
    reading_type: str | None = None
    units: str | None = None
    targets: list[Any] | None = None
    aggregate: bool | None = None
    start_interval: int | None = None
    num_intervals: int | None = None
    historical: bool | None = None
    frequency: int | None = None
    repeat: int | None = None
    report_intervals: str | None = None


class _Server(_Obj):
    """The server-set fields, accepted and ignored on input."""

    id: str | None = None
    created_date_time: str | None = None
    modification_date_time: str | None = None
    object_type: str | None = None


class Program(_Server):
    """A programme (3.1): its name is unique in the VTN (409 otherwise)."""

    program_name: str = Name
    program_long_name: str | None = None
    retailer_name: str | None = None
    retailer_long_name: str | None = None
    program_type: str | None = None
    country: str | None = None
    principal_subdivision: str | None = None
    time_zone_offset: str | None = None
    interval_period: IntervalPeriod | None = None
    program_descriptions: list[dict[str, Any]] | None = None
    binding_events: bool | None = None
    local_price: bool | None = None
    payload_descriptors: list[PayloadDescriptor] | None = None
    targets: list[Any] | None = None
    attributes: list[ValuesMap] | None = None


class Event(_Server):
    """An event of an existing programme (`programID`), its intervals carrying the signals."""

    program_id: str = Field(alias="programID", min_length=1, max_length=128)
    event_name: str | None = None
    duplicate_of: str | None = None
    priority: NonNegativeInt | None = None
    targets: list[Any] | None = None
    report_descriptors: list[ReportDescriptor] | None = None
    payload_descriptors: list[PayloadDescriptor] | None = None
    interval_period: IntervalPeriod | None = None
    intervals: list[Interval] | None = None
    duration: timedelta | None = None


class ReportResource(_Obj):
    """One resource's intervals in a report (at least one)."""

    resource_name: str = Name
    interval_period: IntervalPeriod | None = None
    intervals: list[Interval] = Field(min_length=1)


class Report(_Server):
    """A VEN's report on an existing event; `clientID` and `programID` are set by the server."""

    client_id: str | None = Field(default=None, alias="clientID")
    program_id: str | None = Field(default=None, alias="programID")
    event_id: str = Field(alias="eventID", min_length=1, max_length=128)
    client_name: str = Name
    report_name: str | None = None
    payload_descriptors: list[dict[str, Any]] | None = None
    resources: list[ReportResource] = Field(min_length=1)


class ObjectOperation(_Obj):
    objects: list[Literal["PROGRAM", "EVENT", "REPORT", "SUBSCRIPTION", "VEN", "RESOURCE"]] = Field(
        min_length=1
    )
    operations: list[Literal["GET", "POST", "PUT", "DELETE"]] = Field(min_length=1)
    callback_url: str = Field(min_length=1, max_length=2000)
    bearer_token: str | None = None


class Subscription(_Server):
    """A callback registration (its notifications: notifier.py, docs/openadr.md §6)."""

    client_id: str | None = Field(default=None, alias="clientID")
    client_name: str = Name
    program_id: str | None = Field(default=None, alias="programID")
    object_operations: list[ObjectOperation] = Field(min_length=1)
    targets: list[Any] | None = None


class Ven(_Server):
    """A VEN object; its `clientID` is the OAuth client that owns it."""

    client_id: str | None = Field(default=None, alias="clientID")
    ven_name: str = Name
    attributes: list[ValuesMap] | None = None
    targets: list[Any] | None = None


class Resource(_Server):
    """A VEN's resource (3.1 `/resources`): its name unique per VEN, `venID` an existing VEN of the same client."""

    client_id: str | None = Field(default=None, alias="clientID")
    resource_name: str = Name
    ven_id: str = Field(alias="venID", min_length=1, max_length=128)
    attributes: list[ValuesMap] | None = None
    targets: list[Any] | None = None


MODELS: dict[str, type[_Server]] = {
    "programs": Program,
    "events": Event,
    "reports": Report,
    "subscriptions": Subscription,
    "vens": Ven,
    "resources": Resource,
}
OBJECT_TYPES: dict[str, str] = {
    "programs": "PROGRAM",
    "events": "EVENT",
    "reports": "REPORT",
    "subscriptions": "SUBSCRIPTION",
    "vens": "VEN",
    "resources": "RESOURCE",
}
