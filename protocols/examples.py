"""One valid example of every message: for docs/contract.md, tests and newcomers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from protocols.assets import BATTERY, PV
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
from protocols.topics import SiteTopic, dr_request, site_topic

__all__ = ["EXAMPLE_TS", "examples"]

EXAMPLE_TS = datetime(2030, 1, 15, 17, 0, tzinfo=UTC)


def examples(site: str = "b001") -> list[tuple[str, Message]]:
    """(topic, message) pairs, one per message type, in the order of the topic table."""
    ts = EXAMPLE_TS
    return [
        (
            site_topic(site, SiteTopic.STATE),
            SiteState(
                site=site, ts=ts, msg_id="m1", status="online", agent_version="0.1.0", config_hash="3f2a9c"
            ),
        ),
        (
            site_topic(site, SiteTopic.TELEMETRY),
            TelemetryBatch(
                site=site,
                ts=ts,
                msg_id="m2",
                samples=[
                    Sample(seq=41, asset=PV, point="p_kw", value=-4.2, unit="kW", ts=ts),
                    Sample(seq=42, asset=BATTERY, point="soc_pct", value=63.5, unit="pct", ts=ts),
                ],
            ),
        ),
        (
            site_topic(site, SiteTopic.FLEX),
            FlexEnvelope(
                site=site,
                ts=ts,
                msg_id="m3",
                assets=[
                    AssetFlex(
                        asset=BATTERY,
                        kind="battery",
                        intervals=[
                            FlexInterval(
                                start=ts, end=ts + timedelta(minutes=15), p_min_kw=-5.0, p_max_kw=5.0
                            )
                        ],
                        e_now_kwh=10.2,
                        e_min_kwh=0.8,
                        e_max_kwh=15.2,
                        soc_pct=63.5,
                    )
                ],
            ),
        ),
        (
            site_topic(site, SiteTopic.CMD),
            Command(
                site=site,
                ts=ts,
                msg_id="m4",
                cmd_id="c-2030011517-bat1",
                asset=BATTERY,
                kind="p_setpoint_kw",
                value=-3.0,
                valid_from=ts,
                valid_until=ts + timedelta(minutes=20),
            ),
        ),
        (
            site_topic(site, SiteTopic.ACK),
            Ack(
                site=site,
                ts=ts,
                msg_id="m5",
                cmd_id="c-2030011517-bat1",
                asset=BATTERY,
                status="applied",
                requested=-3.0,
                applied_value=-3.0,
                read_back=-3.0,
            ),
        ),
        (
            site_topic(site, SiteTopic.EVENT),
            Event(
                site=site,
                ts=ts,
                msg_id="m6",
                kind="fallback_entered",
                severity="warning",
                message="no valid command for 900 s",
                details={"fallback_after_s": 900},
            ),
        ),
        (site_topic(site, SiteTopic.STORED), Stored(site=site, ts=ts, msg_id="m7", seq=42)),
        (
            dr_request("winter-peak"),
            DRRequest(
                program="winter-peak",
                ts=ts,
                msg_id="m8",
                request_id="dr-20300115-1",
                start=ts,
                end=ts + timedelta(hours=2),
                direction="reduce",
                p_kw=150.0,
                price_eur_per_kwh=0.25,
            ),
        ),
    ]
