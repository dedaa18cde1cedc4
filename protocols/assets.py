"""Asset roles, standard asset ids and point keys: the names both sides use, written once.

A site YAML may name its assets freely; the simulators' buildings, the test bed, the twin
and the controller's defaults use these standard ids, so no other module spells them.
A point is addressed on the wire as `Sample.asset` + `Sample.point`; `PointKey` is that
pair as one value, and `str(key)` is the `"asset/point"` form the agent's telemetry and
the controller's history use as a dict key.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, NamedTuple

__all__ = [
    "BATTERY",
    "BMS",
    "EV",
    "HP",
    "METER",
    "PV",
    "STANDARD_ASSET_ID",
    "SUBSTATION_SITE_PREFIX",
    "ZONE",
    "PointKey",
    "Points",
    "Role",
    "substation_site_id",
]


class Role(StrEnum):
    """What an asset is, as far as control is concerned (the `kind` of a site YAML asset)."""

    METER = "meter"
    PV = "pv"
    BATTERY = "battery"
    EV = "ev"
    HP = "hp"
    HVAC = "hvac"


#: The asset id each role has in a simulated building (one asset of each role per site).
STANDARD_ASSET_ID: Final[dict[Role, str]] = {
    Role.METER: "meter",
    Role.PV: "pv1",
    Role.BATTERY: "bat1",
    Role.EV: "ev1",
    Role.HP: "hp1",
    Role.HVAC: "zone1",
}

METER: Final = STANDARD_ASSET_ID[Role.METER]
PV: Final = STANDARD_ASSET_ID[Role.PV]
BATTERY: Final = STANDARD_ASSET_ID[Role.BATTERY]
EV: Final = STANDARD_ASSET_ID[Role.EV]
HP: Final = STANDARD_ASSET_ID[Role.HP]
ZONE: Final = STANDARD_ASSET_ID[Role.HVAC]
#: The BACnet device id a site YAML gives its building management system.
BMS: Final = "bms"
#: A secondary (MV/LV) substation's meter is a site of its own: `sub-<station>`.
SUBSTATION_SITE_PREFIX: Final = "sub-"
_ID_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")


def substation_site_id(station: str) -> str:
    """The site id of station `station`'s meter: `T_idx_118` -> `sub-t_idx_118` (a valid site id)."""
    slug = "".join(c if c in _ID_CHARS else "-" for c in station.lower()).lstrip("-_")
    return f"{SUBSTATION_SITE_PREFIX}{slug}"[:64]


class PointKey(NamedTuple):
    """One measured or writable point of one asset: `PointKey("meter", "p_kw")`."""

    asset: str
    point: str

    def __str__(self) -> str:
        return f"{self.asset}/{self.point}"

    @classmethod
    def parse(cls, text: str) -> PointKey:
        """`"meter/p_kw"` → `PointKey("meter", "p_kw")`; a ValueError names the bad text."""
        asset, sep, point = text.partition("/")
        if not sep or not asset or not point or "/" in point:
            raise ValueError(f"a point key is 'asset/point', not {text!r}")
        return cls(asset, point)


class Points:
    """The standard point keys of a simulated building (what the twin and tests read)."""

    METER_P_KW: Final = PointKey(METER, "p_kw")
    PV_P_KW: Final = PointKey(PV, "p_kw")
    BATTERY_P_KW: Final = PointKey(BATTERY, "p_kw")
    BATTERY_SOC_PCT: Final = PointKey(BATTERY, "soc_pct")
    EV_P_KW: Final = PointKey(EV, "p_kw")
    HP_P_KW: Final = PointKey(HP, "p_kw")
    HP_T_TANK_C: Final = PointKey(HP, "t_tank_c")
    # What a substation meter adds (its site's asset is `meter` too; P is `METER_P_KW`):
    # reactive power and energies load-positive, per-phase L-N voltage and current, frequency.
    METER_Q_KVAR: Final = PointKey(METER, "q_kvar")
    METER_V_LN_V: Final = PointKey(METER, "v_ln_v")
    METER_I_A: Final = PointKey(METER, "i_a")
    METER_F_HZ: Final = PointKey(METER, "f_hz")
    METER_E_IMPORT_KWH: Final = PointKey(METER, "e_import_kwh")
    METER_E_EXPORT_KWH: Final = PointKey(METER, "e_export_kwh")
    # The site's connection limit as its agent holds it (edge_agent/connection_guard.py), on
    # the site meter's asset: the import/export maximum in force (grid_connection tightened
    # by a valid DSO cap), whether a local measure is active, and what is left above the limit.
    # The controller plans within the first two (cloud_controller/live/site_limits.py).
    LIMIT_IMPORT_MAX_KW: Final = PointKey(METER, "limit_import_max_kw")
    LIMIT_EXPORT_MAX_KW: Final = PointKey(METER, "limit_export_max_kw")
    LIMIT_ACTIVE: Final = PointKey(METER, "limit_active")
    LIMIT_EXCESS_KW: Final = PointKey(METER, "limit_excess_kw")
