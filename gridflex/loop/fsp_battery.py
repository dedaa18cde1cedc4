"""The FSPs' battery-discharge product: what a site battery can promise per ISP, and its setpoint (pure).

Why: the FSPs' EVs and heat pumps are mostly off at the evening peak (docs/market.md,
"Relief per euro on the twin"), so a reduction of running load offers almost nothing when
the element is overloaded. A battery charged in the afternoon can discharge then.

What an FSP promises from one battery in each of `n_isps` ordered ISPs: the least of its
discharge headroom (its inverter's discharge kW, less what its own self-consumption loop
already discharges in that ISP, since that is in the baseline) and the energy above the
FSP's floor spread evenly over those ISPs. The floor (`FLOOR_PCT`, our policy) keeps a
reserve for the owner. The SoC is the FSP's own telemetry at offer time, less the energy
of the discharges it has already been ordered (`BatteryBook`). An order's ISP is served by
the batteries first (a setpoint is certain, a device limit depends on the device running),
each at `p_setpoint_kw` = its expected power − its share (negative = discharge,
protocols.units); the rest goes to the EV and heat-pump limits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from gridflex.loop.fsp_prognosis import isp_mean
from gridflex.loop.reference_run import ReferenceRun
from protocols.assets import Points
from protocols.market import ISP_S

__all__ = ["FLOOR_PCT", "BatteryBook", "SiteBattery", "battery_offer_kw", "battery_setpoint_kw"]

#: The FSP never discharges a site battery below this SoC (our policy: the owner's reserve).
FLOOR_PCT = 20.0
ISP_H = ISP_S / 3600.0


def battery_offer_kw(
    capacity_kwh: float,
    soc_pct: float,
    floor_pct: float,
    p_discharge_kw: float,
    n_isps: int,
    *,
    expected_kw: float = 0.0,
    eta_discharge: float = 1.0,
) -> float:
    """The discharge kW one battery can promise in each of `n_isps` ISPs (0 when none or at the floor).

    min(headroom, AC energy above the floor / (n_isps · ISP h)); headroom = discharge kW +
    min(0, expected_kw) (what its own loop already discharges is in the baseline).
    """
    if n_isps <= 0 or capacity_kwh <= 0.0:
        return 0.0
    above_kwh = max(0.0, (soc_pct - floor_pct) / 100.0 * capacity_kwh) * eta_discharge
    headroom_kw = max(0.0, p_discharge_kw + min(0.0, expected_kw))
    return min(headroom_kw, above_kwh / (n_isps * ISP_H))


def battery_setpoint_kw(share_kw: float, p_discharge_kw: float, *, expected_kw: float = 0.0) -> float:
    """The battery's `p_setpoint_kw` that takes `share_kw` more off the site than expected (negative)."""
    return max(-p_discharge_kw, min(0.0, expected_kw) - max(0.0, share_kw))


@dataclass(frozen=True)
class SiteBattery:
    """One FSP site's battery: its ratings, its SoC by time and its expected power per ISP (no order)."""

    site: str
    capacity_kwh: float
    p_discharge_kw: float
    eta_discharge: float
    soc_times: tuple[datetime, ...]
    soc_pct: tuple[float, ...]
    expected_kw: Mapping[datetime, float]

    def soc_at(self, now: datetime) -> float:
        """The latest SoC at or before `now` (its telemetry at offer time)."""
        k = max(
            0,
            int(np.searchsorted(np.array([t.timestamp() for t in self.soc_times]), now.timestamp(), "right"))
            - 1,
        )
        return self.soc_pct[k] if self.soc_pct else 0.0

    @classmethod
    def from_run(
        cls, run: ReferenceRun, site: str, capacity_kwh: float, p_discharge_kw: float, eta: float = 0.95
    ) -> SiteBattery | None:
        """From the FSP sites' own run without orders (its telemetry); None if the site has no battery."""
        j = run.sites.index(site)
        soc = run.series.get(Points.BATTERY_SOC_PCT)
        p = run.series.get(Points.BATTERY_P_KW)
        if soc is None or p is None or np.all(np.isnan(soc[:, j])):
            return None
        return cls(
            site,
            capacity_kwh,
            p_discharge_kw,
            eta,
            tuple(run.times),
            tuple(float(v) for v in np.nan_to_num(soc[:, j])),
            isp_mean(run.times, np.nan_to_num(p[:, j])),
        )


@dataclass
class BatteryBook:
    """An FSP's batteries: what they can offer now, and the discharge already promised (kWh per site)."""

    batteries: dict[str, SiteBattery]
    floor_pct: float = FLOOR_PCT
    promised_kwh: dict[str, float] = field(default_factory=dict)
    #: offer id -> ISP start -> site -> kW that offer counted from each battery
    offered: dict[str, dict[datetime, dict[str, float]]] = field(default_factory=dict)

    def offer(
        self, sites: Sequence[str], starts: Sequence[datetime], now: datetime
    ) -> dict[datetime, dict[str, float]]:
        """Per ISP in `starts`, per battery of `sites`: the discharge kW it can promise (`battery_offer_kw`)."""
        out: dict[datetime, dict[str, float]] = {t: {} for t in starts}
        for site in sites:
            b = self.batteries.get(site)
            if b is None:
                continue
            used_pct = 100.0 * self.promised_kwh.get(site, 0.0) / (b.eta_discharge * b.capacity_kwh)
            soc = b.soc_at(now) - used_pct
            for t in starts:
                kw = battery_offer_kw(
                    b.capacity_kwh,
                    soc,
                    self.floor_pct,
                    b.p_discharge_kw,
                    len(starts),
                    expected_kw=b.expected_kw.get(t, 0.0),
                    eta_discharge=b.eta_discharge,
                )
                if kw > 0.0:
                    out[t][site] = kw
        return out

    def dispatch(self, offer_id: str, start: datetime, kw: float) -> tuple[list[tuple[str, float]], float]:
        """An ordered ISP: (site, p_setpoint_kw) per battery the offer counted, and the kW left for the devices.

        The batteries take the ISP's kW first, each in proportion to what it offered; the
        energy is booked as promised.
        """
        per_site = self.offered.get(offer_id, {}).get(start, {})
        total = sum(per_site.values())
        if total <= 0.0 or kw <= 0.0:
            return [], max(0.0, kw)
        f = min(1.0, kw / total)
        out = []
        for site, offered_kw in sorted(per_site.items()):
            b = self.batteries[site]
            share = f * offered_kw
            self.promised_kwh[site] = self.promised_kwh.get(site, 0.0) + share * ISP_H
            out.append(
                (
                    site,
                    round(
                        battery_setpoint_kw(
                            share, b.p_discharge_kw, expected_kw=b.expected_kw.get(start, 0.0)
                        ),
                        3,
                    ),
                )
            )
        return out, max(0.0, kw - f * total)
