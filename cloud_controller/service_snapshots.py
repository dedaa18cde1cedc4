"""The site snapshots the planner and the guard read: copies of the live ones, or the store's newest values.

Why copies: ingest keeps changing the live snapshots while a plan is computed in a worker
thread; the planner gets a copy taken at one instant. A dispatch-only worker does not
ingest at all: it fills its snapshots from the store the ingest workers write.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from cloud_controller.live.types import SiteSnapshot
from protocols.assets import Points

__all__ = ["METER_P_KW", "refresh_from_latest", "snapshot_copies"]

#: The telemetry key ("asset/point") of the grid meter's power: the site's net load.
METER_P_KW = str(Points.METER_P_KW)


def snapshot_copies(source: Mapping[str, SiteSnapshot]) -> dict[str, SiteSnapshot]:
    """A copy of every snapshot, its points dict copied too (the planner may read it in a thread)."""
    return {
        s: SiteSnapshot(
            site=v.site,
            mode=v.mode,
            p_net_kw=v.p_net_kw,
            points=dict(v.points),
            flex=v.flex,
            uncontrollable=v.uncontrollable,
            last_seen=v.last_seen,
            measured_at=v.measured_at,
            missing_assets=v.missing_assets,
        )
        for s, v in source.items()
    }


def refresh_from_latest(
    latest: Mapping[str, Mapping[str, tuple[datetime, float]]],
    snapshots: Mapping[str, SiteSnapshot],
    meters: Mapping[str, SiteSnapshot],
) -> None:
    """Write the store's newest values (`Store.latest()`) into the sites' and meters' snapshots.

    Unknown sites are skipped; the meter's power is the site's net load; `measured_at`
    only moves forward.
    """
    for site, points in latest.items():
        snap = snapshots.get(site) or meters.get(site)
        if snap is None:
            continue
        for key, (ts, value) in points.items():
            snap.points[key] = value
            if key == METER_P_KW:
                snap.p_net_kw = value
            if snap.measured_at is None or ts > snap.measured_at:
                snap.measured_at = ts
