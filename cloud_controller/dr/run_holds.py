"""What live DR runs hold against the planner: assets it must leave alone, battery reservations, dropped commands.

A request holds its selected assets from `lead_s` before its first interval to its end
(`held`); its batteries' energy is reserved for the planner from selection time
(`reservations`, live/reservations.py); a planner command dropped for a held asset is
counted against the active request holding it (`count_dropped`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from cloud_controller.dr.requests_store import DrRecord, DrRequestStore
from cloud_controller.dr.run_record import run_bounds
from cloud_controller.live.reservations import Reservation
from protocols.messages import Command

__all__ = ["LIVE", "count_dropped", "held", "live_runs", "reservations"]

#: The statuses of a request whose run may still hold assets.
LIVE = ("selected", "partial", "active")


def live_runs(
    requests: DrRequestStore, statuses: tuple[str, ...] = LIVE
) -> Iterator[tuple[DrRecord, dict[str, Any]]]:
    """(record, run) of every request in one of `statuses` that has a run, in the store's order."""
    for record in requests.all():
        if record.status not in statuses:
            continue
        run = requests.get_run(record.request.request_id)
        if run is not None:
            yield record, run


def held(requests: DrRequestStore, now: datetime, lead_s: float) -> set[tuple[str, str]]:
    """(site, asset) pairs a live request holds now: from `lead_s` before its first interval to its end."""
    out: set[tuple[str, str]] = set()
    for _, run in live_runs(requests):
        b = run_bounds(run)
        if b[0][0] - timedelta(seconds=lead_s) <= now < b[-1][1]:
            out.update((a["site"], a["asset"]) for a in run["actuations"])
    return out


def reservations(requests: DrRequestStore, now: datetime, lead_s: float) -> list[Reservation]:
    """The batteries live requests selected, for the planner's rows (live/reservations.py).

    From selection time (the run is prepared) to the event's end: the planner keeps their
    energy for the event and plans the DR setpoint as a fixed injection during it.
    """
    out: list[Reservation] = []
    for record, run in live_runs(requests):
        b = run_bounds(run)
        if now >= b[-1][1]:
            continue
        for a in run["actuations"]:
            if a["kind"] != "p_setpoint_kw":  # a battery's (activation.actuation)
                continue
            out.append(
                Reservation(
                    request_id=record.request.request_id,
                    site=str(a["site"]),
                    asset=str(a["asset"]),
                    bounds=tuple(b),
                    kw=tuple(float(v) for v in a["values"]),
                    held_from=b[0][0] - timedelta(seconds=lead_s),
                )
            )
    return out


def count_dropped(requests: DrRequestStore, dropped: list[Command]) -> None:
    """Count the planner's commands dropped for held assets against the active request holding them."""
    if not dropped:
        return
    for record, run in live_runs(requests, ("active",)):
        mine = {(a["site"], a["asset"]) for a in run["actuations"]}
        n = sum(1 for c in dropped if (c.site, c.asset) in mine)
        if n:
            run["dropped_planner_commands"] += n
            requests.put_run(record.request.request_id, run)
