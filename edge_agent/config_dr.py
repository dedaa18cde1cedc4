"""The site YAML's demand-response keys: the BACnet priority DR writes use, and a zone's comfort limits.

Split out of `edge_agent.config_site` (which uses these models): `dr:` at the top level
and `comfort:` on an `hvac` asset (docs/site-config.md, "Demand response at the BMS").
The comfort limits are what the agent's comfort veto (`edge_agent.comfort_veto`) holds a
DR write to — seed 003's constraints (zone inside its comfort band, CO2 below 1000 ppm)
enforced on site, not only planned in the cloud.
"""

from __future__ import annotations

from typing import Final, Literal, Self

from pydantic import Field, model_validator

from edge_agent.config_devices import PointName, _Model
from flexmodels import CO2_LIMIT_PPM

__all__ = ["DR_BACNET_PRIORITY", "DR_KINDS", "ComfortConfig", "DrConfig"]

#: BACnet priority of demand-response writes. 9 is the first level below "manual operator" (8):
#: an operator's manual override at 8 (or a safety interlock at 1-7) still wins over a DR event,
#: and a DR event wins over the BMS's own schedule (usually 16) until it is relinquished.
DR_BACNET_PRIORITY: Final = 9
#: The command kinds written to the BMS as demand-response writes: held at `dr.bacnet_priority`,
#: relinquished when the command ends, watched by the comfort veto while they hold.
DR_KINDS: Final[frozenset[str]] = frozenset({"t_setpoint_c", "fan_speed_pct"})


class DrConfig(_Model):
    """`dr:`: how the agent holds demand-response writes on the BMS."""

    #: The BACnet priority slot DR writes take (and relinquish); a command's own `priority` overrides.
    bacnet_priority: int = Field(default=DR_BACNET_PRIORITY, ge=1, le=16)


class ComfortConfig(_Model):
    """`comfort:` on an `hvac` asset: the limits a DR write on that zone is vetoed at.

    The band is `t_min_c`..`t_max_c` if both are set, else the asset's `model.t_min_c` /
    `model.t_max_c`, else the adaptive band (`flexmodels.adaptive_band`) at
    `running_mean_outdoor_c` by `standard` and `category`. After a veto the zone must be
    back inside the band by `t_hysteresis_k` and CO2 at or below the limit minus
    `co2_hysteresis_ppm` before a new DR write is taken.
    """

    t_min_c: float | None = None
    t_max_c: float | None = None
    co2_max_ppm: float = Field(default=CO2_LIMIT_PPM, gt=0)
    #: The asset's points the veto reads (a missing point is not checked).
    t_point: PointName = "zone_t_c"
    co2_point: PointName = "co2_ppm"
    standard: Literal["en15251", "ashrae55"] = "en15251"
    category: str = "II"
    #: Running-mean outdoor temperature for the default (adaptive) band; 10 °C = heating season.
    running_mean_outdoor_c: float = 10.0
    t_hysteresis_k: float = Field(default=0.5, ge=0)
    co2_hysteresis_ppm: float = Field(default=100.0, ge=0)

    @model_validator(mode="after")
    def _band(self) -> Self:
        if (self.t_min_c is None) != (self.t_max_c is None):
            raise ValueError("comfort.t_min_c and comfort.t_max_c go together")
        if self.t_min_c is not None and self.t_max_c is not None and self.t_min_c >= self.t_max_c:
            raise ValueError(f"comfort.t_min_c {self.t_min_c} must be below t_max_c {self.t_max_c}")
        if self.standard == "en15251" and self.category not in ("I", "II", "III"):
            raise ValueError(f"EN 15251 category must be I, II or III, got {self.category!r}")
        if self.standard == "ashrae55" and self.category not in ("80", "90"):
            raise ValueError(f"ASHRAE 55 acceptability must be 80 or 90, got {self.category!r}")
        return self
