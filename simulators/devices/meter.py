"""Smart meter at the grid connection: power and import/export energy registers."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Meter"]


@dataclass
class Meter:
    """Sign: p_kw > 0 import (load), < 0 export. Three balanced phases at 230 V."""

    p_kw: float = 0.0
    e_import_kwh: float = 0.0
    e_export_kwh: float = 0.0
    v_phase_v: float = 230.0

    def step(self, dt_s: float, *, p_kw: float) -> None:
        """Record the grid-connection power for `dt_s`."""
        self.p_kw = p_kw
        e = p_kw * dt_s / 3600.0
        if e >= 0.0:
            self.e_import_kwh += e
        else:
            self.e_export_kwh -= e

    @property
    def i_phase_a(self) -> float:
        """Phase current (A) of a balanced three-phase connection at `v_phase_v`."""
        return abs(self.p_kw) * 1000.0 / (3.0 * self.v_phase_v)
