"""Turn the first period of a schedule into per-site `Command`s (pure; signing optional).

Every controllable asset of an included site gets a command every period, valid until
the end of the next period plus a margin: the agent's fallback is "no valid command",
so a silent controller is noticed within one period and the equipment returns to its
owner's behaviour. Values respect the asset's ratings and the §14a guaranteed minimum.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from cloud_controller.dispatch.engine import Schedule
from cloud_controller.live.types import SiteRef
from protocols.messages import Command
from protocols.signing import sign

__all__ = ["CommandBuilder"]


class CommandBuilder:
    def __init__(
        self,
        *,
        period_s: float,
        margin_s: float,
        signing_keys: Mapping[str, bytes] | None = None,
        battery_control: str = "setpoint",
    ) -> None:
        self.battery_control = battery_control
        self.period_s = period_s
        self.margin_s = margin_s
        self.keys = dict(signing_keys or {})
        self._seq = 0

    def _command(self, now: datetime, site: str, asset: str, kind: str, value: float) -> Command:
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
                "valid_until": now + timedelta(seconds=self.period_s + self.margin_s),
            }
        )
        key = self.keys.get(site)
        return sign(cmd, key) if key is not None else cmd

    def build(  # noqa: PLR0917
        self,
        now: datetime,
        sites: Sequence[SiteRef],
        excluded: set[int],
        schedule: Schedule,
        bat_index: Mapping[int, int],
        caps: set[tuple[str, str]],
    ) -> tuple[list[Command], dict[str, dict[str, float]]]:
        """Commands for period 0 and the planned kW per site and asset (for the API).

        Batteries get the LP's setpoint; EV chargers and heat pumps in `caps` their
        guaranteed minimum, the others their nominal power (a release); PV a limit only
        when the LP curtails.
        """
        out: list[Command] = []
        setpoints: dict[str, dict[str, float]] = {}
        for i, s in enumerate(sites):
            if i in excluded:
                continue
            plan: dict[str, float] = {}
            if i in bat_index and (bat := s.asset_of("battery")) is not None:
                p_kw = float(schedule.p_bat_kw[0, bat_index[i]])
                rating = float(bat.p_nominal_kw or abs(p_kw))
                p_kw = max(-rating, min(rating, p_kw))
                plan[bat.asset] = p_kw
                meter = s.asset_of("meter")
                if self.battery_control == "grid_target" and meter is not None:
                    # the site's planned grid exchange; the inverter holds it against deviations
                    target = float(schedule.p_site_kw[0, i])
                    plan[meter.asset] = target
                    out.append(self._command(now, s.site, meter.asset, "p_setpoint_kw", target))
                else:
                    out.append(self._command(now, s.site, bat.asset, "p_setpoint_kw", p_kw))
            for a in s.assets:
                if a.kind not in ("ev", "hp") or not a.p_nominal_kw:
                    continue
                nominal = float(a.p_nominal_kw)
                limit = min(nominal, a.p_guaranteed_min_kw) if (s.site, a.asset) in caps else nominal
                plan[a.asset] = limit
                out.append(self._command(now, s.site, a.asset, "p_limit_kw", limit))
            if (pv := s.asset_of("pv")) is not None:
                curtail = float(schedule.curtail_kw[0, i])
                if curtail > 0.05 and pv.p_nominal_kw:
                    limit = max(0.0, float(pv.p_nominal_kw) - curtail)
                    plan[pv.asset] = -limit
                    out.append(self._command(now, s.site, pv.asset, "p_limit_kw", limit))
            setpoints[s.site] = plan
        return out, setpoints
