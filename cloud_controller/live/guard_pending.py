"""Effects of the guard's commands not yet visible in a site's measurements (the guard's view of now).

Why: a command takes the agent's write plus the device's response to show in telemetry; a step
that read only the measurements would act twice on the same excess (or cut a battery that is
about to follow its new setpoint). Each effect counts until a measurement taken `settle_s` after
its command arrives.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from cloud_controller.live.types import SiteSnapshot

__all__ = ["PendingEffects"]


class PendingEffects:
    """Per site [(sent, what, kW)]: what = "site" (the site's power) or "bat" (its battery's, also in the site's)."""

    def __init__(self, settle_s: float) -> None:
        self.settle_s = settle_s
        self.by_site: dict[str, list[tuple[datetime, str, float]]] = {}

    def clear(self) -> None:
        """Forget every effect (a new plan states its own)."""
        self.by_site = {}

    def expect(self, site: str, now: datetime, delta_kw: float, *, battery: bool = False) -> None:
        """A command sent at `now` changes the site's power (or its battery's) by `delta_kw`."""
        self.by_site.setdefault(site, []).append((now, "bat" if battery else "site", delta_kw))

    def view(
        self, snapshots: Mapping[str, SiteSnapshot], battery_asset: Mapping[str, str]
    ) -> tuple[dict[str, float], dict[str, float]]:
        """Each site's power and battery power as measured plus what commands changed since; settled effects dropped."""
        site_kw: dict[str, float] = {}
        bat_kw: dict[str, float] = {}
        for site, snap in snapshots.items():
            seen = snap.measured_at
            pending = [
                e
                for e in self.by_site.get(site, [])
                if seen is None or seen < e[0] + timedelta(seconds=self.settle_s)
            ]
            self.by_site[site] = pending
            if snap.p_net_kw is not None:
                site_kw[site] = snap.p_net_kw + sum(d for _, _, d in pending)
            p_bat = snap.points.get(f"{battery_asset.get(site)}/p_kw", 0.0)
            bat_kw[site] = p_bat + sum(d for _, w, d in pending if w == "bat")
        return site_kw, bat_kw
