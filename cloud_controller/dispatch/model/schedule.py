"""What a solve returns: the schedule over the horizon and the soft limits it relaxed."""

from __future__ import annotations

from dataclasses import dataclass, field

from cloud_controller.dispatch.model.problem import FloatArray, StorageState
from protocols.errors import GridflexError


class DispatchInfeasible(GridflexError):
    """HiGHS found no optimum although every limit is soft: a modelling bug, never silent."""


@dataclass(frozen=True)
class Violation:
    """A soft limit that had to be relaxed: which, where, when (period) and by how much."""

    kind: (
        str  # station_load | station_feed | branch | voltage_high | voltage_low | heat_unmet | shed | curtail
    )
    element: str
    t: int
    amount: float  # kW, or pu for voltage


@dataclass
class Schedule:
    """Result of one solve over the horizon; arrays are (T, n). Load-positive signs."""

    p_site_kw: FloatArray
    p_bat_kw: FloatArray
    p_bat_ch_kw: FloatArray
    p_bat_dis_kw: FloatArray
    e_bat_kwh: FloatArray
    p_hp_kw: FloatArray
    q_ts_kw: FloatArray  # thermal store net charge (kW thermal), per heat pump
    e_ts_kwh: FloatArray
    curtail_kw: FloatArray
    p_unit_kw: FloatArray
    p_root_kw: FloatArray  # (T,) HV/MV (slack) import
    branch_flow_kw: FloatArray
    v_pu: FloatArray
    objective: float
    violations: list[Violation] = field(default_factory=list)

    def next_state(self) -> StorageState:
        """Storage state after the first period (what a rolling horizon carries forward)."""
        return StorageState(e_bat_kwh=self.e_bat_kwh[0].copy(), e_ts_kwh=self.e_ts_kwh[0].copy())
