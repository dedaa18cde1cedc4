"""One interval's delivery rows of a DR run, per selected site, from the telemetry in the store.

Read an interval `report_after_s` past its end (the agents' telemetry has reached the
store, `activator.py`); the arithmetic is the pure `delivery` module's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from cloud_controller.dr.delivery import household_kw, interval_delivery
from cloud_controller.dr.requests_store import DrRecord
from cloud_controller.store import Store
from protocols.assets import Points

__all__ = ["HOLD_LOOKBACK_S", "interval_rows", "metered_assets"]

_METER = Points.METER_P_KW
#: How far before an interval its opening meter value is looked for (agents report on change,
#: and at least every `poll.max_age_s`, 60 s by default).
HOLD_LOOKBACK_S = 900.0


def metered_assets(sources: Sequence[Mapping[str, Any]], site: str) -> list[str]:
    """The site's selected assets with their own power telemetry: its batteries (`p_kw`).

    A fan or a heat-pump zone has no power point of its own: it stays in the household, so its
    share of the selection is not seen at the meter and reports as shortfall (docs/dr.md §6).
    """
    return sorted(
        {
            str(s["asset"])
            for s in sources
            if s["site"] == site
            and str(s.get("kind")) == "battery"
            and any(abs(float(v)) > 1e-9 for v in s["kw"])
        }
    )


def interval_rows(
    store: Store,
    record: DrRecord,
    run: Mapping[str, Any],
    k: int,
    bounds: tuple[datetime, datetime],
    selected: Mapping[str, list[float]],
) -> list[dict[str, Any]]:
    """Interval `k`'s delivery row of every selected site (`selected`: site -> kW per interval), JSON-ready.

    The baseline is the run's (plan or meter); a site whose selected batteries report their
    own power gets the household's draw instead (its batteries idle, delivery.py).
    """
    start, end = bounds
    n = len(run["bounds"])
    rows = []
    for site, sel_kw in selected.items():
        since = start - timedelta(seconds=HOLD_LOOKBACK_S)
        samples = store.read_series(site, _METER.asset, _METER.point, since, end)
        metered = metered_assets(record.selection.get("sources", []), site)
        assets = [store.read_series(site, a, "p_kw", since, end) for a in metered]
        base = run["baseline"].get(site, {"kw": [0.0] * n, "source": ["none"] * n})
        base_kw, base_source = float(base["kw"][k]), str(base["source"][k])
        household = household_kw(samples, assets, start, end) if assets else None
        if household is not None:  # its batteries idle: what the site would have drawn (delivery.py)
            base_kw, base_source = household, "household"
        rows.append(
            interval_delivery(
                site=site,
                step=k,
                bounds=(start, end),
                direction=record.request.direction,
                baseline_kw=base_kw,
                baseline_source=base_source,
                samples=samples,
                selected_kw=sel_kw[k],
            ).json()
        )
    return rows
