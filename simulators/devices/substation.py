"""Secondary-substation meter: what a meter on an MV/LV station's LV busbar reports.

Unlike a house meter, nothing in the simulators computes its values: the grid-truth power
flow (in the composition root) sets them each update from what the buildings really draw,
and the meter only holds them and accumulates energy, as a real meter integrates.
Sign: P and Q are positive when power flows from the transformer into the LV network
(the station's load, `protocols.units`), negative when the LV network feeds back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["V_LN_NOMINAL_V", "SubstationMeter"]

#: L-N voltage of a 0.4 kV busbar at 1.0 pu.
V_LN_NOMINAL_V = 400.0 / math.sqrt(3.0)


def _phases(v: float) -> tuple[float, float, float]:
    return (v, v, v)


@dataclass
class SubstationMeter:
    """Three-phase LV busbar meter: instantaneous P, Q, phase voltages and currents, import/export energy."""

    p_kw: float = 0.0
    q_kvar: float = 0.0
    v_ln_v: tuple[float, float, float] = field(default_factory=lambda: _phases(V_LN_NOMINAL_V))
    i_a: tuple[float, float, float] = (0.0, 0.0, 0.0)
    f_hz: float = 50.0
    e_import_kwh: float = 0.0
    e_export_kwh: float = 0.0
    updates: int = 0

    def step(
        self,
        dt_s: float,
        *,
        p_kw: float,
        q_kvar: float,
        v_ln_v: tuple[float, float, float],
        i_a: tuple[float, float, float],
        f_hz: float = 50.0,
    ) -> None:
        """Take the quantities measured now; `p_kw` held over the `dt_s` that ended now adds to the energies."""
        if dt_s < 0:
            raise ValueError("dt_s must be >= 0")
        self.p_kw, self.q_kvar, self.v_ln_v, self.i_a, self.f_hz = p_kw, q_kvar, v_ln_v, i_a, f_hz
        e_kwh = p_kw * dt_s / 3600.0
        if e_kwh >= 0.0:
            self.e_import_kwh += e_kwh
        else:
            self.e_export_kwh -= e_kwh
        self.updates += 1

    @property
    def s_kva(self) -> float:
        """Apparent power (balanced phases: √(P² + Q²))."""
        return math.hypot(self.p_kw, self.q_kvar)

    @property
    def pf(self) -> float:
        """Power factor P/S, signed like P (1.0 when nothing flows)."""
        s = self.s_kva
        return 1.0 if s < 1e-9 else self.p_kw / s

    @property
    def v_ll_v(self) -> tuple[float, float, float]:
        """L-L voltages AB, BC, CA of balanced phases (√3 × the mean of the two L-N voltages)."""
        a, b, c = self.v_ln_v
        k = math.sqrt(3.0) / 2.0
        return ((a + b) * k, (b + c) * k, (c + a) * k)
