"""Which EV chargers and heat pumps the fleet guard caps, and which one it releases (pure).

Split from guard.py: the order is the owners' cost, decided on the devices' measured power alone —
EVs before heat pumps, running ones by their saving (power now above the guaranteed minimum),
idle EV chargers too while excess is left (a plug-in would add its full power unseen for a
poll); released one at a time, heat pumps first, only where the room takes the device's full
power back. The guard applies the decision (its caps, the pending effects, the commands).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence

from cloud_controller.live.guard_types import FlexibleDevice
from cloud_controller.live.types import SiteRef, SiteSnapshot

__all__ = ["RUNNING_KW", "device_to_release", "devices_to_cap", "flexible_devices", "power_kw"]

RUNNING_KW = 0.1  # an EV or heat pump drawing more than this is running


def flexible_devices(sites: Sequence[SiteRef]) -> list[FlexibleDevice]:
    """Every EV charger and heat pump with power above its guaranteed minimum: what the guard may cap."""
    return [
        FlexibleDevice(s.site, a.asset, a.kind, float(a.p_nominal_kw), a.p_guaranteed_min_kw)
        for s in sites
        for a in s.assets
        if a.kind in ("ev", "hp") and a.p_nominal_kw and a.p_nominal_kw > a.p_guaranteed_min_kw
    ]


def power_kw(snapshots: Mapping[str, SiteSnapshot], f: FlexibleDevice) -> float:
    """The device's measured power (0 without a report)."""
    snap = snapshots.get(f.site)
    return snap.points.get(f"{f.asset}/p_kw", 0.0) if snap is not None else 0.0


def devices_to_cap(
    devices: Sequence[FlexibleDevice],
    need_kw: float,
    snapshots: Mapping[str, SiteSnapshot],
    skip: Collection[tuple[str, str] | str],
) -> tuple[list[tuple[FlexibleDevice, float]], list[FlexibleDevice], float]:
    """(running devices to cap with their saving kW, idle EV chargers to cap, kW still needed).

    `skip`: device keys already capped and sites the guard leaves alone.
    """
    running: list[tuple[FlexibleDevice, float]] = []
    for kind in ("ev", "hp"):
        candidates = [
            (power_kw(snapshots, f) - f.floor_kw, f)
            for f in devices
            if f.kind == kind and f.key not in skip and f.site not in skip
        ]
        for saving, f in sorted(candidates, key=lambda x: -x[0]):
            if need_kw <= 0:
                break
            if saving > RUNNING_KW:
                running.append((f, saving))
                need_kw -= saving
    chosen = {f.key for f, _ in running}
    idle = [
        f
        for f in devices
        if need_kw > 0 and f.kind == "ev" and f.key not in skip and f.site not in skip and f.key not in chosen
    ]
    return running, idle, need_kw


def device_to_release(
    devices: Sequence[FlexibleDevice],
    caps: Collection[tuple[str, str]],
    skip_sites: Collection[str],
    room_of: Callable[[str], float],
    margin_kw: float,
) -> FlexibleDevice | None:
    """The one capped device to release now, heat pumps first, where the room takes its full power back."""
    for kind in ("hp", "ev"):
        for f in devices:
            if f.kind != kind or f.key not in caps or f.site in skip_sites:
                continue
            if f.nominal_kw - f.floor_kw + margin_kw <= room_of(f.site):
                return f
    return None
