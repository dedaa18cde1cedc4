"""Turn the first period of a schedule into per-site `Command`s (pure; signing optional).

Every controllable asset of an included site gets a command every period, valid until
the end of the next period plus a margin: the agent's fallback is "no valid command",
so a silent controller is noticed within one period and the equipment returns to its
owner's behaviour. Values respect the asset's ratings and the §14a guaranteed minimum.

Fencing: every command the dispatcher publishes carries its lease's token. The builder
stamps it before signing when told where the token comes from (`CommandBuilder.fence`),
so it signs once; `fence_commands`, at the one place commands leave the service, stamps
(and signs again) whatever arrives without it, so a planner need not know about leases.
`lease_fence` says which token that is, or that there is none and nothing may be sent.
Agents refuse a token lower than the highest they have seen.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Literal

from cloud_controller.dispatch import Schedule
from cloud_controller.live.site_forecast import period_start
from cloud_controller.live.types import AssetRef, SiteRef
from protocols.assets import Role
from protocols.messages import Command
from protocols.signing import SigningKey, sign

__all__ = ["CommandBuilder", "fence_commands", "lease_fence"]


def lease_fence(
    state: Literal["acquiring", "standby", "held", "released"],
    token: int | None,
    expires_at: datetime | None,
    now: datetime,
) -> int | None:
    """The fencing token commands may carry now, or None: no lease held, so send nothing.

    A lease that the holder still believes held but whose expiry has passed (the process
    was paused longer than the TTL) counts as lost: a standby may already hold the next token.
    """
    if state != "held" or token is None or expires_at is None or now >= expires_at:
        return None
    return token


def fence_commands(
    commands: Sequence[Command], fence: int, keys: Mapping[str, bytes | SigningKey]
) -> list[Command]:
    """`commands` carrying `fence`, signed again with their site's key where they were signed.

    A command already carrying `fence` is returned as it is. Raises ValueError for a signed
    command whose site has no key here (re-stamping it would break its signature).
    """
    out: list[Command] = []
    for cmd in commands:
        if cmd.fence == fence:
            out.append(cmd)
            continue
        stamped = cmd.model_copy(update={"fence": fence, "sig": None})
        key = keys.get(cmd.site)
        if key is not None:
            stamped = sign(stamped, key)
        elif cmd.sig is not None:
            raise ValueError(
                f"command {cmd.cmd_id!r} is signed but site {cmd.site!r} has no key to re-sign it"
            )
        out.append(stamped)
    return out


class CommandBuilder:
    """Builds (and optionally signs) the period's commands for every controllable asset from a schedule."""

    def __init__(
        self,
        *,
        period_s: float,
        margin_s: float,
        signing_keys: Mapping[str, bytes | SigningKey] | None = None,
        battery_control: str = "setpoint",
    ) -> None:
        self.battery_control = battery_control
        self.period_s = period_s
        self.margin_s = margin_s
        self.keys = dict(signing_keys or {})
        self._seq = 0
        #: Where the fencing token comes from (the service's lease), read per command; None: no token.
        self.fence: Callable[[], int | None] | None = None

    def valid_until(self, now: datetime) -> datetime:
        """End of the period after `now`'s plus the margin: what a plan's command is valid for."""
        return now + timedelta(seconds=self.period_s + self.margin_s)

    def one(
        self, now: datetime, site: str, asset: str, kind: str, value: float, valid_until: datetime
    ) -> Command:
        """One command (the fleet guard's corrections between plans)."""
        return self._command(now, site, asset, kind, value, valid_until=valid_until)

    def corrections(
        self,
        now: datetime,
        sites: Sequence[SiteRef],
        battery_kw: Mapping[str, float],
        devices: Collection[tuple[str, str]],
        caps: Collection[tuple[str, str]],
    ) -> list[Command]:
        """A guard step's commands, valid to the period's end: its battery values, then each device it capped or released.

        A device in `caps` gets its cap (`cap_value`), the others their release.
        """
        valid_until = self.valid_until(period_start(now, self.period_s))
        by_site = {s.site: s for s in sites}
        out: list[Command] = []
        for site, value in sorted(battery_kw.items()):
            asset, kind = self.battery_target(by_site[site])
            out.append(self.one(now, site, asset, kind, value, valid_until))
        for site, asset in sorted(devices):
            ref = next(a for a in by_site[site].assets if a.asset == asset)
            value = self.cap_value(ref, capped=(site, asset) in caps)
            out.append(self.one(now, site, asset, "p_limit_kw", value, valid_until))
        return out

    def battery_values(
        self, sites: Sequence[SiteRef], excluded: set[int], schedule: Schedule, bat_index: Mapping[int, int]
    ) -> dict[str, float]:
        """Per battery site the value the plan commands.

        Battery kW ("setpoint") or the site's planned grid exchange ("grid_target", where the
        site has a meter control).
        """
        out: dict[str, float] = {}
        for i, s in enumerate(sites):
            if i in excluded or i not in bat_index or (bat := s.asset_of(Role.BATTERY)) is None:
                continue
            if self.battery_control == "grid_target" and s.asset_of(Role.METER) is not None:
                out[s.site] = float(schedule.p_site_kw[0, i])
            else:
                p_kw = float(schedule.p_bat_kw[0, bat_index[i]])
                rating = float(bat.p_nominal_kw or abs(p_kw))
                out[s.site] = max(-rating, min(rating, p_kw))
        return out

    def grid_target_sites(self, sites: Sequence[SiteRef]) -> set[str]:
        """Sites whose battery value is their grid exchange (the meter's `p_setpoint_kw`), not the battery's."""
        if self.battery_control != "grid_target":
            return set()
        return {s.site for s in sites if s.asset_of(Role.METER) is not None}

    def battery_target(self, site: SiteRef) -> tuple[str, str]:
        """(asset, kind) a battery value is sent to."""
        meter, bat = site.asset_of(Role.METER), site.asset_of(Role.BATTERY)
        if self.battery_control == "grid_target" and meter is not None:
            return meter.asset, "p_setpoint_kw"
        assert bat is not None
        return bat.asset, "p_setpoint_kw"

    def _command(
        self,
        now: datetime,
        site: str,
        asset: str,
        kind: str,
        value: float,
        *,
        valid_until: datetime | None = None,
    ) -> Command:
        self._seq += 1
        cmd = Command.model_validate(
            {
                "site": site,
                "ts": now,
                "cmd_id": f"{site}-{asset}-{int(now.timestamp())}-{self._seq}",
                "asset": asset,
                "kind": kind,
                "value": round(float(value), 3),
                "valid_from": now,
                "valid_until": valid_until or self.valid_until(now),
                "fence": self.fence() if self.fence is not None else None,
            }
        )
        key = self.keys.get(site)
        return sign(cmd, key) if key is not None else cmd

    def build(
        self,
        now: datetime,
        sites: Sequence[SiteRef],
        excluded: set[int],
        schedule: Schedule,
        battery_kw: Mapping[str, float],
        caps: set[tuple[str, str]],
    ) -> tuple[list[Command], dict[str, dict[str, float]]]:
        """Commands for period 0 and the planned kW per site and asset (for the API).

        Batteries get `battery_kw` (see `battery_values`); EV chargers and heat pumps in
        `caps` their guaranteed minimum, the others their nominal power (a release); PV its
        nominal power less what the LP curtails.
        """
        out: list[Command] = []
        setpoints: dict[str, dict[str, float]] = {}
        for i, s in enumerate(sites):
            if i in excluded:
                continue
            plan: dict[str, float] = {}
            if s.site in battery_kw:
                asset, kind = self.battery_target(s)
                plan[asset] = battery_kw[s.site]
                out.append(self._command(now, s.site, asset, kind, battery_kw[s.site]))
            for a in s.assets:
                if a.kind not in ("ev", "hp") or not a.p_nominal_kw:
                    continue
                plan[a.asset] = self.cap_value(a, capped=(s.site, a.asset) in caps)
                out.append(self._command(now, s.site, a.asset, "p_limit_kw", plan[a.asset]))
            if (pv := s.asset_of(Role.PV)) is not None and pv.p_nominal_kw:
                # every period, like the other assets (nominal = no curtailment): a PV-only site
                # would otherwise fall back for lack of commands while the controller is alive
                curtail = float(schedule.curtail_kw[0, i])
                limit = float(pv.p_nominal_kw) - (curtail if curtail > 0.05 else 0.0)
                plan[pv.asset] = -max(0.0, limit)
                out.append(self._command(now, s.site, pv.asset, "p_limit_kw", max(0.0, limit)))
            setpoints[s.site] = plan
        return out, setpoints

    @staticmethod
    def cap_value(asset: AssetRef, *, capped: bool) -> float:
        """An EV charger's / heat pump's limit: its guaranteed minimum when capped, else nominal."""
        nominal = float(asset.p_nominal_kw or 0.0)
        return min(nominal, asset.p_guaranteed_min_kw) if capped else nominal
