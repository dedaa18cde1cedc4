"""Topic builders and parsers round-trip; ids that could escape a site's subtree are refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import topics
from protocols.topics import ID_PATTERN, SiteTopic, TopicKind

valid_ids = st.from_regex(f"^{ID_PATTERN}$", fullmatch=True)


@given(site=valid_ids, kind=st.sampled_from(list(SiteTopic)))
def test_site_topic_round_trips(site: str, kind: SiteTopic) -> None:
    parsed = topics.parse(topics.site_topic(site, kind))
    assert parsed.site == site
    assert parsed.kind == TopicKind(kind.value)


@given(program=valid_ids)
def test_dr_topic_round_trips(program: str) -> None:
    parsed = topics.parse(topics.dr_request(program))
    assert parsed.kind is TopicKind.DR_REQUEST
    assert parsed.program == program


@pytest.mark.parametrize(
    "bad",
    ["", "A", "a/b", "+", "#", "a+", "-a", "_a", "a" * 65, "a b", "ä", "a\x00"],
    ids=[
        "empty",
        "upper",
        "slash",
        "plus",
        "hash",
        "plus-inside",
        "dash-first",
        "underscore-first",
        "too-long",
        "space",
        "umlaut",
        "nul",
    ],
)
def test_bad_ids_are_refused_with_a_reason(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid site id"):
        topics.site_topic(bad, SiteTopic.STATE)


def test_wildcards_and_shared_subscriptions() -> None:
    assert topics.site_wildcard("telemetry") == "gridflex/v1/site/+/telemetry"
    assert topics.dr_wildcard() == "gridflex/v1/dr/+/request"
    assert (
        topics.shared("gridflex-ingest", topics.site_wildcard(SiteTopic.TELEMETRY))
        == "$share/gridflex-ingest/gridflex/v1/site/+/telemetry"
    )
    with pytest.raises(ValueError, match="group"):
        topics.shared("bad/group", "x")


@pytest.mark.parametrize(
    "topic",
    [
        "gridflex/v2/site/a/state",
        "gridflex/v1/site/a/unknown",
        "gridflex/v1/site/a/state/extra",
        "gridflex/v1/site/A/state",
        "gridflex/v1/dr/p/offer",
        "other/v1/site/a/state",
        "gridflex/v1",
    ],
)
def test_parse_refuses_topics_outside_the_contract(topic: str) -> None:
    with pytest.raises(ValueError):
        topics.parse(topic)
