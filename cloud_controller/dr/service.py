"""The DR service behind `/dr/requests`: check → sources → selection → persisted record.

On a request: every contract of its programme is checked (`contracts.eligible_sites`);
when none accepts, the request is refused with every broken rule (`DrRefused`, the API's
422). The accepted contracts become selection sources from the controller's latest site
snapshots: a contract whose site names a battery in the contracts file is a battery
source at the snapshot's `{asset}/soc_pct` (documented default `DEFAULT_SOC_PCT` when the
site has not reported one); any other contract is a flat curtailable load of its
`p_max_kw` in the directions it offers — unless its site publishes heat-pump or AHU-fan
envelopes, which become `heatpump` / `fan` sources (`zone_sources.py`) with their BMS
value per step (`t_setpoint_c`, `fan_speed_pct`) stored beside the kW for activation.
With a `StationGrid`, each MV/LV station above a contracted site is a feeder row whose
headroom comes from the latest congestion forecast (`feeders.py`), so the selection never
moves a station over its limit. `select()` (HiGHS) answers; the record
(`selected`, `partial` with unmet kW per interval, `refused` with its refusals, later
`cancelled`) is stored, and each selected site's participation counts against its
`events_per_day`.

Pure of I/O except the two stores (one record database: a SQLite file, or the PostgreSQL
several controllers share); the controller publishes (service.py). The check and the
record are one write section of the DR area, so of two controllers given the same
request id one records it and the other gets `DrConflict` (the API's 409), and an
`events_per_day` count is never read by one while the other records.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from cloud_controller.dr.activation import interval_bounds
from cloud_controller.dr.contracts import Contract, Eligibility, eligible_sites
from cloud_controller.dr.contracts_file import SiteBattery, load_contracts
from cloud_controller.dr.feeders import StationGrid, feeders_from_forecast
from cloud_controller.dr.problem import Feeder, Selection, SelectionRequest, Source
from cloud_controller.dr.requests_store import DrRecord, DrRequestStore
from cloud_controller.dr.selection import select
from cloud_controller.dr.sources import battery_source, site_limit
from cloud_controller.dr.store import DrStore
from cloud_controller.dr.zone_sources import ZoneSource, fan_speeds_pct, setpoints_c, zone_sources
from cloud_controller.live.types import SiteRef, SiteSnapshot
from cloud_controller.store.records import RecordDb, SqliteRecords
from flexmodels import BatteryFlexState
from protocols.clock import Clock
from protocols.errors import GridflexError
from protocols.messages import DRRequest

__all__ = ["DEFAULT_SOC_PCT", "DrConflict", "DrRefused", "DrService", "selection_request"]

#: SOC assumed for a contracted battery whose site has not reported one yet.
DEFAULT_SOC_PCT = 50.0


class DrConflict(GridflexError):
    """A request with that id is recorded already (by this controller or another one on the same store)."""

    def __init__(self, request_id: str, status: str) -> None:
        self.request_id = request_id
        self.status = status
        super().__init__(f"DR request {request_id!r} exists already ({status})")


class DrRefused(GridflexError):
    """No contract accepts the request: every refusal, each naming its rule."""

    def __init__(self, refusals: list[dict[str, str]]) -> None:
        self.refusals = refusals
        rules = sorted({r["rule"] for r in refusals})
        super().__init__(f"refused by rule(s) {', '.join(rules)}")


@dataclass(frozen=True)
class _Steps:
    n: int
    dt_h: float


def _steps(request: DRRequest, step_minutes: int) -> _Steps:
    window_h = (request.end - request.start).total_seconds() / 3600.0
    n = len(request.intervals) or max(1, math.ceil(window_h * 60.0 / step_minutes - 1e-9))
    return _Steps(n, window_h / n)


def selection_request(request: DRRequest, *, step_minutes: int) -> SelectionRequest:
    """The selection's request: signed kW per step (reduce = less load = negative) and per-step values."""
    steps = _steps(request, step_minutes)
    sign = -1.0 if request.direction == "reduce" else 1.0
    if request.intervals:
        kw = [sign * iv.p_kw for iv in request.intervals]
        weights = [iv.weight for iv in request.intervals]
        use_weight = all(w is not None for w in weights)
        values = [
            (iv.weight if use_weight else iv.price_eur_per_kwh) or request.price_eur_per_kwh or 0.0
            for iv in request.intervals
        ]
    else:
        kw = [sign * request.p_kw] * steps.n
        use_weight = False
        values = [request.price_eur_per_kwh or 0.0] * steps.n
    return SelectionRequest(
        target_kw=kw,
        dt_h=steps.dt_h,
        objective=request.objective or "flexibility",
        value_per_kwh=values,
        value_is_weight=use_weight,
        bid_min_kw=request.min_bid_kw or 0.0,
    )


def _load_source(contract: Contract, n: int) -> Source:
    red = np.full(n, contract.p_max_kw if "reduce" in contract.directions else 0.0)
    inc = np.full(n, contract.p_max_kw if "increase" in contract.directions else 0.0)
    return Source(contract.site, "load", "load", red, inc, cost_eur_per_kwh=contract.price_eur_per_kwh or 0.0)


def _battery(contract: Contract, battery: SiteBattery, snap: SiteSnapshot | None, n: int) -> Source:
    soc = (snap.points if snap else {}).get(f"{battery.asset}/soc_pct", DEFAULT_SOC_PCT)
    state = BatteryFlexState(
        capacity_kwh=battery.capacity_kwh,
        soc_pct=min(max(float(soc), 0.0), 100.0),
        soc_min_pct=contract.soc_floor_pct,
        p_charge_max_kw=contract.p_max_kw,
        p_discharge_max_kw=contract.p_max_kw,
    )
    return battery_source(battery.asset, state, contract, n_steps=n)


def _sources(
    contract: Contract,
    battery: SiteBattery | None,
    snap: SiteSnapshot | None,
    site: SiteRef | None,
    request: DRRequest,
    n: int,
) -> tuple[list[Source], list[ZoneSource]]:
    """The contract's sources: its battery, its site's heat pumps and fans, else a flat load."""
    zones = zone_sources(
        contract, snap.flex if snap else None, site, snap.points if snap else {}, end=request.end, n_steps=n
    )
    out = [_battery(contract, battery, snap, n)] if battery is not None else []
    out += [z.source for z in zones]
    return (out or [_load_source(contract, n)]), zones


def _entry(sel: Selection, s: Source, zones: Mapping[tuple[str, str], ZoneSource]) -> dict[str, Any]:
    kw = [round(float(v), 6) for v in sel.flex_kw[(s.site, s.asset)]]
    entry: dict[str, Any] = {"site": s.site, "asset": s.asset, "kind": s.kind, "kw": kw}
    z = zones.get((s.site, s.asset))
    if z is not None and s.kind == "heatpump":
        entry["command_asset"] = z.command_asset
        entry["t_setpoint_c"] = setpoints_c(z, kw)
        entry["t_setpoint_release_c"] = round(z.t_now_c, 2)
    elif z is not None and s.kind == "fan":
        entry["command_asset"] = z.command_asset
        entry["fan_speed_pct"] = fan_speeds_pct(z, kw)
        entry["fan_speed_release_pct"] = fan_speeds_pct(z, [0.0])[0]
    return entry


def _selection_json(
    sel: Selection,
    sources: list[Source],
    zones: Mapping[tuple[str, str], ZoneSource] | None = None,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    zones = zones or {}
    return {
        "status": sel.status,
        "objective": sel.objective,
        "objective_value": sel.objective_value,
        "delivered_kw": [round(float(v), 6) for v in sel.delivered_kw],
        "unmet_kw": [round(float(v), 6) for v in sel.unmet_kw],
        "sources": [_entry(sel, s, zones) for s in sources],
        "sites": sel.sites,
        "route": sel.route,
        "notes": [*sel.notes, *(notes or [])],
    }


def _refusals(refused: list[Eligibility]) -> list[dict[str, str]]:
    return [{"site": e.site, "rule": r.rule, "reason": r.reason} for e in refused for r in e.refusals]


class DrService:
    """The DR store, its requests and the contracts file, behind one lock for check-and-record."""

    def __init__(
        self, path: Path | RecordDb, *, clock: Clock, contracts_file: Path | None, step_minutes: int
    ) -> None:
        self.clock = clock
        self.step_minutes = step_minutes
        db = SqliteRecords(path) if isinstance(path, Path) else path
        self.contracts = DrStore(db)
        self.requests = DrRequestStore(db)
        self.batteries: dict[tuple[str, str], SiteBattery] = {}
        self._lock = threading.Lock()  # the events-per-day count and the event record are one step
        if contracts_file is not None:
            loaded = load_contracts(contracts_file)
            for c in loaded.contracts:
                self.contracts.put_contract(c)
            self.batteries = dict(loaded.batteries)

    def submit(
        self,
        request: DRRequest,
        snapshots: Mapping[str, SiteSnapshot],
        *,
        sites: Mapping[str, SiteRef] | None = None,
        grid: StationGrid | None = None,
    ) -> DrRecord:
        """Check, select and record `request`; record it `refused` and raise `DrRefused` when no contract accepts it.

        A request id recorded already (other than `refused`, which may be posted again) raises
        `DrConflict`, whichever controller recorded it.

        `sites` (the registry) lets a heat pump's envelope command its zone; `grid` adds the
        stations' feeder rows from the congestion forecast (without it, none, as before).
        """
        received: datetime = self.clock.now()
        with self._lock, self.requests.write():
            known = self.requests.get(request.request_id)
            if known is not None and known.status != "refused":
                raise DrConflict(request.request_id, known.status)
            counts = self.contracts.events_on_day(request.program, request.start)
            contracts = self.contracts.contracts(request.program)
            accepted, refused = eligible_sites(contracts, request, events_that_day=counts, received=received)
            refusals = _refusals(refused)
            if not accepted:
                if not contracts:
                    refusals = [
                        {"site": "", "rule": "program", "reason": f"no contract under {request.program!r}"}
                    ]
                self.requests.put(DrRecord(request, received.timestamp(), "refused", {}, refusals))
                record = None  # refused: raised after the section, so its record is committed
            else:
                record = self._selected(request, accepted, refusals, received, snapshots, sites, grid)
        if record is None:
            raise DrRefused(refusals)
        return record

    def _selected(
        self,
        request: DRRequest,
        accepted: list[Contract],
        refusals: list[dict[str, str]],
        received: datetime,
        snapshots: Mapping[str, SiteSnapshot],
        sites: Mapping[str, SiteRef] | None,
        grid: StationGrid | None,
    ) -> DrRecord:
        """Select among the accepted contracts and record the request and its events (in the caller's section)."""
        sel, selection = self._select(request, accepted, snapshots, sites, grid)
        record = DrRecord(
            request=request,
            received_ts=received.timestamp(),
            status="selected" if sel.status == "full" else "partial",
            selection=selection,
            refusals=refusals,
        )
        self.requests.put(record)
        for site in sel.sites:
            self.contracts.record_event(request.request_id, site, request.program, request.start, request.end)
        return record

    def _select(
        self,
        request: DRRequest,
        accepted: list[Contract],
        snapshots: Mapping[str, SiteSnapshot],
        sites: Mapping[str, SiteRef] | None,
        grid: StationGrid | None,
    ) -> tuple[Selection, dict[str, Any]]:
        """The accepted contracts' sources, feeder rows and selection (the selection as stored JSON)."""
        sreq = selection_request(request, step_minutes=self.step_minutes)
        sources: list[Source] = []
        zones: dict[tuple[str, str], ZoneSource] = {}
        for c in accepted:
            got, zs = _sources(
                c,
                self.batteries.get(c.key),
                snapshots.get(c.site),
                (sites or {}).get(c.site),
                request,
                sreq.n_steps,
            )
            sources += got
            zones.update({(z.source.site, z.source.asset): z for z in zs})
        notes = [z.note for z in zones.values() if z.note]
        feeders: list[Feeder] = []
        if grid is not None:
            bounds = interval_bounds(request.start, request.end, sreq.n_steps)
            feeders, grid_notes = feeders_from_forecast(grid, bounds, [c.site for c in accepted])
            notes += grid_notes
        sel = select(sreq, sources, limits=[site_limit(c) for c in accepted], feeders=feeders)
        return sel, _selection_json(sel, sources, zones, notes)

    def preview(
        self,
        request: DRRequest,
        snapshots: Mapping[str, SiteSnapshot],
        *,
        sites: Mapping[str, SiteRef] | None = None,
        grid: StationGrid | None = None,
    ) -> dict[str, Any]:
        """What `submit` would select now, recording nothing (an offer's dry run); DrRefused as `submit`."""
        with self._lock:
            counts = self.contracts.events_on_day(request.program, request.start)
            contracts = self.contracts.contracts(request.program)
            accepted, refused = eligible_sites(
                contracts, request, events_that_day=counts, received=self.clock.now()
            )
        if not accepted:
            refusals = _refusals(refused) or [
                {"site": "", "rule": "program", "reason": f"no contract under {request.program!r}"}
            ]
            raise DrRefused(refusals)
        return self._select(request, accepted, snapshots, sites, grid)[1]

    def cancel(self, request_id: str) -> DrRecord | None:
        """Mark a request `cancelled` (kept, with its selection); None if unknown."""
        with self._lock, self.requests.write():
            record = self.requests.get(request_id)
            if record is None:
                return None
            cancelled = DrRecord(
                record.request, record.received_ts, "cancelled", record.selection, record.refusals
            )
            self.requests.put(cancelled)
        return cancelled

    def newest_accepted(self, program: str) -> DrRecord | None:
        """The programme's newest live request (`selected`, `partial` or `active`): what its retained topic holds."""
        live = [
            r
            for r in self.requests.all()
            if r.request.program == program and r.status in ("selected", "partial", "active")
        ]
        return live[-1] if live else None

    def close(self) -> None:
        """Close both stores."""
        self.requests.close()
        self.contracts.close()
