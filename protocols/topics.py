"""MQTT topic names of the contract (`gridflex/v1/...`): builders, parsers, wildcards.

Ids are validated here once, so a topic built from an id can never smuggle in a
`/`, `+` or `#` and subscribe to or publish on somebody else's site.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "ID_PATTERN",
    "ROOT",
    "ParsedTopic",
    "SiteTopic",
    "TopicKind",
    "dr_report",
    "dr_request",
    "dr_wildcard",
    "parse",
    "shared",
    "site_topic",
    "site_wildcard",
    "validate_id",
]

ROOT = "gridflex/v1"
ID_PATTERN = r"[a-z0-9][a-z0-9_-]{0,63}"
_ID_RE = re.compile(rf"^{ID_PATTERN}$")
_SHARE_GROUP_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class SiteTopic(StrEnum):
    """Per-site topics; the value is the last topic level."""

    STATE = "state"
    TELEMETRY = "telemetry"
    FLEX = "flex"
    CMD = "cmd"
    ACK = "ack"
    EVENT = "event"
    STORED = "stored"


class TopicKind(StrEnum):
    """Every kind of topic the contract knows (site topics plus the DR request)."""

    STATE = "state"
    TELEMETRY = "telemetry"
    FLEX = "flex"
    CMD = "cmd"
    ACK = "ack"
    EVENT = "event"
    STORED = "stored"
    DR_REQUEST = "dr_request"


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    """A topic taken apart: its kind and the site (or DR program) it belongs to."""

    kind: TopicKind
    site: str | None = None
    program: str | None = None


def validate_id(value: str, *, what: str = "id") -> str:
    """Return `value` if it is a valid site/asset/program id, else raise ValueError saying why."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__}")
    if not _ID_RE.match(value):
        raise ValueError(
            f"invalid {what} {value!r}: must match {ID_PATTERN} "
            "(lower-case letters, digits, '_' or '-', starting with a letter or digit, at most 64 chars)"
        )
    return value


def site_topic(site: str, kind: SiteTopic | str) -> str:
    """`gridflex/v1/site/{site}/{kind}`."""
    kind = SiteTopic(kind)
    return f"{ROOT}/site/{validate_id(site, what='site id')}/{kind.value}"


def site_wildcard(kind: SiteTopic | str) -> str:
    """Subscription for one topic kind of every site: `gridflex/v1/site/+/{kind}`."""
    return f"{ROOT}/site/+/{SiteTopic(kind).value}"


def dr_request(program: str) -> str:
    """`gridflex/v1/dr/{program}/request`."""
    return f"{ROOT}/dr/{validate_id(program, what='DR program id')}/request"


def dr_report(program: str) -> str:
    """`gridflex/v1/dr/{program}/report`: a DR request's delivery when an interval closes (not retained)."""
    return f"{ROOT}/dr/{validate_id(program, what='DR program id')}/report"


def dr_wildcard() -> str:
    """Subscription for every DR program's requests."""
    return f"{ROOT}/dr/+/request"


def shared(group: str, topic_filter: str) -> str:
    """MQTT 5 shared subscription: `$share/{group}/{filter}` (workers of one group split the load)."""
    if not _SHARE_GROUP_RE.match(group):
        raise ValueError(f"invalid shared-subscription group {group!r}: use letters, digits, '_' or '-'")
    if topic_filter.startswith("$"):
        raise ValueError(f"cannot share a system topic filter {topic_filter!r}")
    return f"$share/{group}/{topic_filter}"


def parse(topic: str) -> ParsedTopic:
    """Take a concrete topic apart; raise ValueError for anything not in the contract."""
    parts = topic.split("/")
    if len(parts) < 4 or f"{parts[0]}/{parts[1]}" != ROOT:
        raise ValueError(f"not a GridFlex v1 topic: {topic!r}")
    if parts[2] == "site" and len(parts) == 5:
        site = validate_id(parts[3], what="site id")
        try:
            kind = SiteTopic(parts[4])
        except ValueError:
            raise ValueError(f"unknown site topic kind {parts[4]!r} in {topic!r}") from None
        return ParsedTopic(kind=TopicKind(kind.value), site=site)
    if parts[2] == "dr" and len(parts) == 5 and parts[4] == "request":
        return ParsedTopic(kind=TopicKind.DR_REQUEST, program=validate_id(parts[3], what="DR program id"))
    raise ValueError(f"unknown GridFlex topic {topic!r}")
