"""Who has what: seeded allocation of households' sizes and 2024/2030 assets (the Schutterwald study §2.1–2.2).

Pure: arrays in, arrays out. Households are the region's sites; each belongs to one MV/LV
station whose role (reference / focus PV / focus EV) picks its 2030 adoption shares.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cloud_controller.study.config import StudyConfig
from protocols.errors import ConfigError

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Population:
    """Per-household attributes (length H arrays)."""

    station: tuple[str, ...]
    area_m2: FloatArray
    annual_kwh: FloatArray
    heat_annual_kwh: FloatArray
    pv_2024: BoolArray
    pv_2030: BoolArray
    ev: BoolArray
    hp: BoolArray
    battery: BoolArray  # only where pv_2030
    thermal_store: BoolArray  # only where pv_2030 and hp

    @property
    def n(self) -> int:
        """Number of households."""
        return len(self.station)

    def counts(self) -> dict[str, int]:
        """How many households, and how many have each kind of asset."""
        return {
            "households": self.n,
            "pv_2024": int(self.pv_2024.sum()),
            "pv_2030": int(self.pv_2030.sum()),
            "ev": int(self.ev.sum()),
            "hp": int(self.hp.sum()),
            "battery": int(self.battery.sum()),
            "thermal_store": int(self.thermal_store.sum()),
        }


def _pick(rng: np.random.Generator, candidates: npt.NDArray[np.int64], share: float, out: BoolArray) -> None:
    """Mark round(share × len(candidates)) of the candidates, chosen at random."""
    k = round(share * len(candidates))
    if k:
        out[rng.choice(candidates, size=k, replace=False)] = True


def draw_population(cfg: StudyConfig, site_station: tuple[str, ...]) -> Population:
    """Seeded: the same config and region always give the same households.

    Status quo PV (2024) is drawn per station; 2030 PV keeps every 2024 roof and adds more
    up to the station's share, so the future contains the present.
    """
    rng = np.random.default_rng(cfg.seed)
    n = len(site_station)
    d = cfg.demand
    area = rng.uniform(d.area_min_m2, d.area_max_m2, size=n)
    annual = d.e_avg_kwh * area / d.area_avg_m2
    heat = d.heat_kwh_per_m2 * area
    flags = {k: np.zeros(n, dtype=bool) for k in ("pv24", "pv30", "ev", "hp", "bat", "ts")}
    stations = tuple(dict.fromkeys(site_station))
    for st in stations:
        role = cfg.station_roles.get(st, "reference")
        if role not in cfg.mix:
            raise ConfigError(f"station {st!r} has role {role!r} with no mix", key="mix")
        mix = cfg.mix[role]
        idx = np.flatnonzero(np.asarray(site_station) == st).astype(np.int64)
        _pick(rng, idx, cfg.pv_share_2024, flags["pv24"])
        flags["pv30"][idx] = flags["pv24"][idx]
        extra = round(mix.pv * len(idx)) - int(flags["pv24"][idx].sum())
        if extra > 0:
            free = idx[~flags["pv30"][idx]]
            flags["pv30"][rng.choice(free, size=min(extra, len(free)), replace=False)] = True
        _pick(rng, idx, mix.ev, flags["ev"])
        _pick(rng, idx, mix.hp, flags["hp"])
        _pick(rng, idx[flags["pv30"][idx]], mix.battery_of_pv, flags["bat"])
        _pick(rng, idx[flags["pv30"][idx] & flags["hp"][idx]], mix.thermal_store_of_pv_hp, flags["ts"])
    return Population(
        station=tuple(site_station),
        area_m2=area,
        annual_kwh=annual,
        heat_annual_kwh=heat,
        pv_2024=flags["pv24"],
        pv_2030=flags["pv30"],
        ev=flags["ev"],
        hp=flags["hp"],
        battery=flags["bat"],
        thermal_store=flags["ts"],
    )
