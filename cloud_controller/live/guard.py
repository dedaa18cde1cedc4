"""The fleet guard: a fast, measurement-based loop that keeps each interval's mean under the limit.

Why it exists: the congestion that counts is the 15-min mean import at the transformer,
and what breaks a 15-min plan is what happens inside the interval: an EV plugs in at
11 kW, a heat pump's thermostat switches on, a household cooks. The MPC cannot see
those in advance; a guard that watches the fleet's measured power every few minutes
can. Each step it projects the interval's mean from the energy already drawn and the
power now, and when the projection exceeds the limit it removes the excess in an
order that costs the owners least:

1. batteries that are charging stop charging (the plan's pre-charge is deferred);
2. EV chargers are capped at their guaranteed minimum (§14a EnWG, 4.2 kW), running
   ones with the largest saving first; idle ones too while the headroom left would not
   absorb a plug-in at full power (a plug-in would otherwise go unseen for a poll);
3. heat pumps are capped at their guaranteed minimum (the tank rides through);
4. batteries discharge beyond the plan, shared by the power they have left.

When the projection has room again it undoes those steps in reverse order, one capped
device per step and only if the room exceeds what that device would take back: the
deferred EV energy comes back as the headroom allows, not as a rebound spike.

Caps persist across periods (the MPC renews them with its commands); battery offsets
are reset by every new plan, which re-optimises the batteries from the measured state.
Pure: time comes in as arguments, commands go out as values.

Elements: `limit_kw` is the limit of the whole fleet's sum (the HV/MV element); each
`GuardElement` (`set_elements`, e.g. an MV/LV station with the registered sites below it
and its rating, or a DSO envelope on it, in force now) is watched the same way with its own
sites. An element over its limit is relieved by its own sites only (stations first, then
the fleet); nothing is released while any element is over, and a device is released only
where every element above it has the room. `GuardChanges.over` names the elements over
their limit, with the excess, and the step logs each by name.

DR reservations (`set_reserved`, live/reservations.py): a battery a DR request holds starts
from the request's setpoint, not the plan's, so releasing an offset returns it to the DR
value and nothing moves it while every element is under its limit; its extra discharge stops at
the SoC the reservation keeps (`set_reserved_floors`), before and during the event, so the guard
does not spend what a later interval needs. When an element is over, the grid's limit wins
otherwise: the guard changes the reserved battery as any other, counts it
(`dr_overrides`, `GuardChanges.dr_overrides`) and logs a warning naming the site.

Measured elements: an element with a station meter carries its `background_kw` (the meter's
P minus the fleet's sites' measured P below it, `station_load.py`), so the guard projects its
measured total: background + the sites' measurements + the pending effects of commands
(= the meter's reading + pending changes). `fleet_background_kw` can do the same for the
fleet's sum (the live planner leaves it 0: docs/grid.md says why). Without a meter: the
sites' sum, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime

from cloud_controller.live.guard_devices import (
    RUNNING_KW,
    device_to_release,
    devices_to_cap,
    flexible_devices,
    power_kw,
)
from cloud_controller.live.guard_pending import PendingEffects
from cloud_controller.live.guard_reserve import reserved_value_min_kw, soc_now_pct
from cloud_controller.live.guard_types import FlexibleDevice, GuardChanges, GuardElement, IntervalEnergy
from cloud_controller.live.types import SiteRef, SiteSnapshot

__all__ = ["FleetGuard", "GuardChanges", "GuardElement"]

log = logging.getLogger(__name__)

BATTERY_DEADBAND_KW = 0.1  # battery changes smaller than this are not sent
MIN_SOC_PCT = 8.0  # batteries below this are not asked for extra discharge
MIN_REMAINING_FRACTION = 1.0 / 3.0  # excess is spread over at least a third of the period
DEFAULT_ETA_D = 0.95  # the dispatch LP's battery discharge efficiency (its default)


class FleetGuard:
    """State of the fast loop over one fleet. `limit_kw` is the limit of the sites' sum."""

    def __init__(
        self,
        sites: Sequence[SiteRef],
        *,
        limit_kw: float,
        period_s: float,
        battery_control: str,
        release_margin_kw: float = 1.0,
        settle_s: float = 10.0,
        fleet_name: str = "hvmv",
    ) -> None:
        """Set up the guard; `settle_s` is how long a measurement may still show the old power.

        That is, how long after a command: the agent's write plus the device's response.
        """
        self.limit_kw = limit_kw
        self.fleet_name = fleet_name  # the element whose limit `limit_kw` is (all the sites)
        self.elements: tuple[GuardElement, ...] = ()  # further elements (set_elements)
        self.fleet_background_kw = 0.0  # measured load outside the fleet under the fleet's limit
        self._energy: dict[str, IntervalEnergy] = {}
        self.period_s = period_s
        self.battery_control = battery_control
        self.release_margin_kw = release_margin_kw
        self.battery_kw_max: dict[str, float] = {}
        self.battery_asset: dict[str, str] = {}  # site -> the battery's asset id (its points' prefix)
        self.battery_kwh: dict[str, float] = {}  # site -> the battery's capacity (reserved floors)
        self.flexible: list[FlexibleDevice] = flexible_devices(sites)
        for s in sites:
            for a in s.assets:
                if a.kind == "battery" and a.p_nominal_kw:
                    self.battery_kw_max[s.site] = float(a.p_nominal_kw)
                    self.battery_asset[s.site] = a.asset
                    self.battery_kwh[s.site] = float(a.capacity_kwh or 0.0)
        self.caps: set[tuple[str, str]] = set()
        self.planned_battery_kw: dict[str, float] = {}  # the plan's setpoint / grid target
        self.offset_kw: dict[str, float] = {}  # guard's change to it (<= 0)
        self.excluded: set[str] = set()
        self._newest: datetime | None = None  # newest measurement the last step saw
        self._pending = PendingEffects(settle_s)  # effects of commands not yet measured
        self.settle_s = settle_s
        self._now = datetime.min
        self._bat_kw: dict[str, float] = {}
        self._skip: set[str] = set()
        self.reserved_kw: dict[str, float] = {}  # site -> DR setpoint of a battery a request holds now
        self.dr_overrides = 0  # times a step moved a reserved battery off its DR setpoint (a limit was over)
        self.reserved_floor_pct: dict[str, float] = {}  # site -> SoC % a DR reservation keeps (step 4 stops)
        self.reserved_eta_d = DEFAULT_ETA_D  # the plan's discharge efficiency, for those floors

    # -- inputs ----------------------------------------------------------------------

    def set_elements(self, elements: Sequence[GuardElement], *, fleet_background_kw: float = 0.0) -> None:
        """The elements watched besides the fleet's sum, with their limits and backgrounds now.

        Each plan renews them, and each step between plans where station meters report.
        """
        self.elements = tuple(elements)
        self.fleet_background_kw = fleet_background_kw

    def _watched(self) -> list[GuardElement | None]:
        """The elements in the order they are relieved: each of `elements`, then the fleet (None)."""
        return [*self.elements, None]

    def on_plan(
        self,
        now: datetime,
        planned_battery_kw: Mapping[str, float],
        excluded: set[str],
        snapshots: Mapping[str, SiteSnapshot],
    ) -> None:
        """A new plan: battery values from the plan and guard offsets cleared.

        The plan's expected effect on each battery site stays pending until measured.
        """
        self.planned_battery_kw = dict(planned_battery_kw)
        self.offset_kw = {}
        self.reserved_kw = {}  # the planner gives them again (set_reserved), against this plan's values
        self.excluded = set(excluded)
        self.caps = {k for k in self.caps if k[0] not in self.excluded}
        self._pending.clear()
        for site, value in planned_battery_kw.items():
            snap = snapshots.get(site)
            if snap is None or snap.p_net_kw is None:
                continue
            p_bat = snap.points.get(f"{self.battery_asset.get(site)}/p_kw", 0.0)
            if self.battery_control == "setpoint":
                delta = value - p_bat
            else:  # the inverter moves the site to its target as far as its power allows
                p_max = self.battery_kw_max.get(site, 0.0)
                delta = min(max(value - snap.p_net_kw, -p_max - p_bat), p_max - p_bat)
            self._expect(site, now, delta, battery=True)

    def set_reserved(self, setpoints: Mapping[str, float], now: datetime | None = None) -> None:
        """Site → the DR setpoint of its battery while a request holds it (live/reservations.py).

        Those batteries' values start from the setpoint instead of the plan's; the planner
        renews the map before every step. With `now`, a change of a battery's starting value
        (plan → DR setpoint, one DR step to the next) is expected in its measurements like a
        command's, so a battery still charging for the reservation when the event's command
        goes out is not read as charging against the DR setpoint. Only with battery setpoints: a grid target is the
        site's exchange, not the battery's power, so in that mode reservations are not seen
        (a known limit, docs/dr.md §6).
        """
        new = dict(setpoints) if self.battery_control == "setpoint" else {}
        if now is not None:  # the DR command's effect is pending until measured, as a plan's is
            for site in set(new) | set(self.reserved_kw):
                planned = self.planned_battery_kw.get(site, 0.0)
                delta = new.get(site, planned) - self.reserved_kw.get(site, planned)
                if abs(delta) > 1e-9 and site in self.battery_kw_max:
                    self._expect(site, now, delta, battery=True)
        self.reserved_kw = new

    def set_reserved_floors(
        self, soc_floor_pct: Mapping[str, float], *, eta_d: float = DEFAULT_ETA_D
    ) -> None:
        """Site → the SoC (%) a DR reservation keeps in its battery now (the plan's floor for this period).

        Extra discharge (step 4) stops there instead of at `MIN_SOC_PCT`, and is bounded so that it
        cannot cross it before the period ends (live/guard_reserve.py; `eta_d` the plan's discharge
        efficiency): the guard may relieve a limit with a reserved battery, but not spend the
        energy its event still needs.
        """
        self.reserved_floor_pct = dict(soc_floor_pct)
        self.reserved_eta_d = eta_d

    def _expect(self, site: str, now: datetime, delta_kw: float, *, battery: bool = False) -> None:
        self._pending.expect(site, now, delta_kw, battery=battery)

    def _view(self, snapshots: Mapping[str, SiteSnapshot]) -> tuple[dict[str, float], dict[str, float]]:
        """Each site's power and battery power as measured plus what commands changed since."""
        return self._pending.view(snapshots, self.battery_asset)

    def _sum(self, by_site: Mapping[str, float], el: GuardElement | None) -> float:
        """The power of an element: its sites' (the fleet's: every site) plus its measured background."""
        background = self.fleet_background_kw if el is None else el.background_kw
        return background + sum(v for s, v in by_site.items() if el is None or s in el.sites)

    # -- the step --------------------------------------------------------------------

    def step(
        self, now: datetime, snapshots: Mapping[str, SiteSnapshot], *, force: bool = False
    ) -> GuardChanges:
        """One guard step on the latest measurements (plus the pending effects of commands sent since).

        Returns what changed. Without a new measurement since the last step nothing is decided
        unless `force` (at a plan).
        """
        measured = {site: s.p_net_kw for site, s in snapshots.items() if s.p_net_kw is not None}
        for el in self._watched():
            name = self.fleet_name if el is None else el.name
            self._energy.setdefault(name, IntervalEnergy()).integrate(
                now, self._sum(measured, el), self.period_s
            )
        newest = max((s.measured_at for s in snapshots.values() if s.measured_at is not None), default=None)
        if not force and newest is not None and self._newest is not None and newest <= self._newest:
            return GuardChanges()
        self._newest = newest
        self._now = now
        # sites gone since the plan get nothing until the next plan excludes them
        self._skip = self.excluded | {s for s, v in snapshots.items() if v.mode in ("offline", "unknown")}
        changes = GuardChanges()
        self._keep_reserves(snapshots, changes)
        room: dict[str | None, float] = {}  # element name (None: the fleet) -> kW of room
        for el in self._watched():
            site_kw, self._bat_kw = self._view(snapshots)  # again after each element's relief
            name = self.fleet_name if el is None else el.name
            limit_kw = self.limit_kw if el is None else el.limit_kw
            need_kw = self._sum(site_kw, el) - self._allowed_kw(name, limit_kw, now)
            if need_kw > 0:
                log.info("guard: %s projected %.1f kW over its %.1f kW limit", name, need_kw, limit_kw)
                changes.over[name] = need_kw
                self._reduce(need_kw, snapshots, changes, None if el is None else el.sites)
            else:
                room[None if el is None else el.name] = -need_kw
        if not changes.over:
            self._release(room, snapshots, changes)
        return changes

    def _allowed_kw(self, name: str, limit_kw: float, now: datetime) -> float:
        """Mean power an element may still draw for the rest of the interval, against the power now."""
        energy = self._energy[name]
        assert energy.interval_start is not None
        elapsed_s = (now - energy.interval_start).total_seconds()
        remaining_s = max(self.period_s - elapsed_s, MIN_REMAINING_FRACTION * self.period_s)
        budget_kwh = limit_kw * self.period_s / 3600.0 - energy.energy_kwh
        allowed_kw = budget_kwh / (remaining_s / 3600.0)
        log.debug(
            "guard %s %s: allowed %.1f kW for %.0f s, energy %.2f kWh",
            now.isoformat(timespec="seconds"),
            name,
            allowed_kw,
            remaining_s,
            energy.energy_kwh,
        )
        return allowed_kw

    def _room_of(self, room: Mapping[str | None, float], site: str) -> float:
        """The room every element above `site` has (the least of them)."""
        return min(
            [room.get(None, 0.0)] + [room.get(el.name, 0.0) for el in self.elements if site in el.sites]
        )

    def _take(self, room: dict[str | None, float], site: str, kw: float) -> None:
        """`kw` of room used at `site`: gone from every element above it."""
        room[None] = room.get(None, 0.0) - kw
        for el in self.elements:
            if site in el.sites:
                room[el.name] = room.get(el.name, 0.0) - kw

    def _point(self, snapshots: Mapping[str, SiteSnapshot], site: str, key: str) -> float:
        snap = snapshots.get(site)
        return snap.points.get(key, 0.0) if snap is not None else 0.0

    def _set_offset(self, site: str, offset_kw: float, changes: GuardChanges) -> None:
        old = self.offset_kw.get(site, 0.0)
        delta = offset_kw - old
        if abs(delta) < BATTERY_DEADBAND_KW:
            return
        if site in self.reserved_kw and abs(offset_kw) > abs(
            old
        ):  # only `_reduce` moves away: a limit is over
            self.dr_overrides += 1
            changes.dr_overrides.add(site)
            log.warning(
                "guard: %s's battery moved %.2f kW off its DR setpoint %.2f kW (a limit is over: %s)",
                site,
                delta,
                self.reserved_kw[site],
                ", ".join(sorted(changes.over)) or "?",
            )
        self._expect(site, self._now, delta, battery=True)
        self.offset_kw[site] = offset_kw
        changes.battery_kw[site] = self.battery_value(site)

    def _value_min_kw(self, site: str, snapshots: Mapping[str, SiteSnapshot]) -> float | None:
        """The lowest value a reserved battery may have to the period's end (guard_reserve.py); None: unbounded."""
        floor_pct = self.reserved_floor_pct.get(site)
        cap = self.battery_kwh.get(site, 0.0)
        snap = snapshots.get(site)
        soc_key = f"{self.battery_asset.get(site)}/soc_pct"
        if floor_pct is None or cap <= 0 or snap is None or soc_key not in snap.points:
            return None
        t = self._now.timestamp()
        hours_left = (self.period_s - t % self.period_s) / 3600.0
        held = site in self.reserved_kw
        base = self.reserved_kw.get(site, self.planned_battery_kw.get(site, 0.0))
        age_s = (self._now - snap.measured_at).total_seconds() if snap.measured_at is not None else 0.0
        p_bat = snap.points.get(f"{self.battery_asset.get(site)}/p_kw", 0.0)
        soc = soc_now_pct(snap.points[soc_key], p_bat, age_s, cap, self.reserved_eta_d)
        return reserved_value_min_kw(
            soc, floor_pct, cap, self.reserved_eta_d, hours_left, base_kw=base, held=held
        )

    def _keep_reserves(self, snapshots: Mapping[str, SiteSnapshot], changes: GuardChanges) -> None:
        """Pull back an extra discharge of a reserved battery that would now cross its floor by the period's end."""
        for site, off in list(self.offset_kw.items()):
            low = self._value_min_kw(site, snapshots)
            if off >= 0 or low is None or site in self._skip:
                continue
            base = self.reserved_kw.get(site, self.planned_battery_kw.get(site, 0.0))
            if base + off < low:
                self._set_offset(site, min(0.0, low - base), changes)

    def battery_value(self, site: str) -> float:
        """The battery command value now: the plan's value (a DR setpoint if reserved) plus the guard's offset."""
        base = self.reserved_kw.get(site, self.planned_battery_kw.get(site, 0.0))
        value = base + self.offset_kw.get(site, 0.0)
        if self.battery_control == "setpoint":
            p_max = self.battery_kw_max.get(site, 0.0)
            value = min(max(value, -p_max), p_max)
        return value

    def _reduce(
        self,
        need_kw: float,
        snapshots: Mapping[str, SiteSnapshot],
        changes: GuardChanges,
        sites: frozenset[str] | None,
    ) -> None:
        """Relieve `need_kw` with the sites of one element (`sites`; None: the whole fleet)."""
        active = [
            b
            for b in self.battery_kw_max
            if b in self.planned_battery_kw and b not in self._skip and (sites is None or b in sites)
        ]
        need_kw = self._stop_charging(active, need_kw, changes)
        if need_kw <= 0:
            return
        need_kw = self._cap_devices(need_kw, snapshots, changes, sites)
        if need_kw <= 0:
            return
        self._discharge_more(active, need_kw, snapshots, changes)

    def _stop_charging(self, active: list[str], need_kw: float, changes: GuardChanges) -> float:
        """Step 1 of `_reduce`: cut charging batteries; returns what is still needed."""
        for site in active:
            p_bat = self._bat_kw.get(site, 0.0)
            if need_kw <= 0:
                break
            if p_bat > RUNNING_KW:
                cut = min(p_bat, need_kw)
                self._set_offset(site, self.offset_kw.get(site, 0.0) - cut, changes)
                need_kw -= cut
        return need_kw

    def _cap_devices(
        self,
        need_kw: float,
        snapshots: Mapping[str, SiteSnapshot],
        changes: GuardChanges,
        sites: frozenset[str] | None = None,
    ) -> float:
        """Steps 2./3. of `_reduce`: caps, EVs before heat pumps, running ones by their saving (guard_devices.py)."""
        mine = [f for f in self.flexible if sites is None or f.site in sites]
        running, idle, need_kw = devices_to_cap(mine, need_kw, snapshots, self.caps | self._skip)
        for f, saving in running:
            self.caps.add(f.key)
            changes.capped.add(f.key)
            self._expect(f.site, self._now, -saving)
        for f in idle:
            self.caps.add(f.key)
            changes.capped.add(f.key)
        return need_kw

    def _discharge_more(
        self, active: list[str], need_kw: float, snapshots: Mapping[str, SiteSnapshot], changes: GuardChanges
    ) -> None:
        """Step 4. of `_reduce`: extra discharge, shared by what each battery has left."""
        room = {}
        for site in active:
            floor_pct = max(MIN_SOC_PCT, self.reserved_floor_pct.get(site, 0.0))
            if self._point(snapshots, site, f"{self.battery_asset[site]}/soc_pct") < floor_pct:
                continue
            room[site] = max(0.0, self._bat_kw.get(site, 0.0) + self.battery_kw_max[site])
            low = self._value_min_kw(site, snapshots)
            if low is not None:  # a reserved battery: not under its floor by the period's end
                room[site] = min(room[site], max(0.0, self.battery_value(site) - low))
        total = sum(room.values())
        if total <= 0:
            return
        share = min(1.0, need_kw / total)
        for site, r in room.items():
            if r > 0:
                self._set_offset(site, self.offset_kw.get(site, 0.0) - share * r, changes)

    def _release(
        self, room: dict[str | None, float], snapshots: Mapping[str, SiteSnapshot], changes: GuardChanges
    ) -> None:
        """Undo relief where every element above a site has the room (`room`: kW per element)."""
        room = {k: v - self.release_margin_kw for k, v in room.items()}
        # 4./1. battery offsets back towards the plan
        for site, off in sorted(self.offset_kw.items(), key=lambda x: x[1]):
            here = self._room_of(room, site)
            if off < 0 and here > 0 and site not in self._skip:
                back = min(-off, here)
                self._set_offset(site, off + back, changes)
                self._take(room, site, back)
        # 3./2. one capped device per step, heat pumps first, if the room takes its full power
        f = device_to_release(
            self.flexible,
            self.caps,
            self._skip,
            lambda site: self._room_of(room, site),
            self.release_margin_kw,
        )
        if f is not None:
            self.caps.discard(f.key)
            changes.released.add(f.key)
            if power_kw(snapshots, f) >= f.floor_kw - RUNNING_KW:
                self._expect(f.site, self._now, f.nominal_kw - f.floor_kw)
