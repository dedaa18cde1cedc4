"""Measurements for state estimation: sensor values with their σ, built from meters, quality and forecasts.

Pure: arrays and small dataclasses in, a `MeasurementBatch` out; nothing here reads the store
or the clock. Why each σ is what it is:

* **Meter class → σ.** An IEC 62053-21/22 class-c meter (EN 50470-3 classes A/B/C are about
  2/1/0.5) stays within ±c % of the reading above its transitional current; below it the
  limit widens, which `p_floor_frac` models as a floor at a share of the rated power.
  power-grid-model and pandapower both read σ as "the error range divided by 3", so
  σ = c/100 · max(|P|, floor) / 3 (99.7 % of readings inside the class limit).
* **Quality.** A "bad" sample is dropped. A "stale" one, or any reading older than
  `stale_after_s`, is blended towards the forecast's σ as it ages (a 30-minute-old meter
  reading knows little more than the forecast) and dropped after `max_age_s`; a dropped
  site meter falls back to its pseudo-measurement.
* **Pseudo-measurements** for unmetered loads come from the forecast quantiles: for a normal
  distribution p90 − p10 = 2 · 1.2816 σ, so σ = (p90 − p10) / 2.563, never below `sigma_floor_kw`.
* **Reactive power.** Site meters report P only; Q is a pseudo-value at the load's power
  factor with a wide σ (`q_sigma_frac` of the apparent power), so Q never pretends to be metered.

Sign convention (protocols.units): load-positive; a sensor on a load measures its consumption.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "Z_P10_P90",
    "FlowSensors",
    "LoadForecast",
    "LoadReadings",
    "LoadSensors",
    "MeasurementBatch",
    "MeterClass",
    "QualityPolicy",
    "SensorSpec",
    "VoltageSensors",
    "age_widened_sigma",
    "load_sensors",
    "meter_sigma",
    "pseudo_sigma_kw",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Quality = Literal["good", "stale", "bad"]
Side = Literal["from", "to"]

#: Distance between the 10 % and 90 % quantiles of a normal distribution, in σ.
Z_P10_P90 = 2.0 * 1.2815515655446004


@dataclass(frozen=True)
class MeterClass:
    """An accuracy class: `class_pct` of the reading, floored at `p_floor_frac` of the rating."""

    class_pct: float = 1.0
    p_floor_frac: float = 0.05

    def __post_init__(self) -> None:
        if self.class_pct <= 0 or self.p_floor_frac < 0:
            raise ValueError("class_pct must be > 0 and p_floor_frac >= 0")


def meter_sigma(value: FloatArray | float, rated: float, meter: MeterClass) -> FloatArray:
    """σ of a reading of a class-`meter` instrument rated `rated` (same unit as `value`)."""
    mag = np.maximum(np.abs(np.asarray(value, dtype=float)), meter.p_floor_frac * rated)
    # never exactly zero: PGM refuses σ <= 0 and a zero weight is no measurement
    out: FloatArray = np.maximum(meter.class_pct / 100.0 * mag / 3.0, 1e-9 * max(rated, 1e-9))
    return out


def pseudo_sigma_kw(p10_kw: FloatArray, p90_kw: FloatArray, sigma_floor_kw: float) -> FloatArray:
    """σ of a pseudo-measurement from its forecast p10..p90 band (normal assumption), floored."""
    width = np.abs(np.asarray(p90_kw, dtype=float) - np.asarray(p10_kw, dtype=float))
    out: FloatArray = np.maximum(width / Z_P10_P90, sigma_floor_kw)
    return out


@dataclass(frozen=True)
class QualityPolicy:
    """How sample quality and age change a measurement (see the module docstring)."""

    stale_after_s: float = 300.0
    max_age_s: float = 1800.0
    stale_sigma_factor: float = 3.0  # for quantities with no forecast to blend into (voltages)

    def __post_init__(self) -> None:
        if not 0 <= self.stale_after_s < self.max_age_s:
            raise ValueError("need 0 <= stale_after_s < max_age_s")


def age_widened_sigma(
    sigma: FloatArray,
    sigma_prior: FloatArray | None,
    age_s: FloatArray,
    quality: Sequence[Quality] | npt.NDArray[np.str_],
    policy: QualityPolicy,
) -> FloatArray:
    """σ after quality and age: unchanged if good and fresh, widened if stale, inf (dropped) if bad or too old.

    With a prior (the forecast's σ) a stale σ is blended linearly from the meter's σ at
    `stale_after_s` to the prior's at `max_age_s`; without one it is multiplied by
    `stale_sigma_factor`. A sample flagged "stale" counts as at least `stale_after_s` old.
    """
    s = np.asarray(sigma, dtype=float).copy()
    age = np.asarray(age_s, dtype=float).copy()
    q = np.asarray(quality)
    age = np.where(q == "stale", np.maximum(age, policy.stale_after_s), age)
    stale = age > policy.stale_after_s
    frac = np.clip((age - policy.stale_after_s) / (policy.max_age_s - policy.stale_after_s), 0.0, 1.0)
    if sigma_prior is None:
        s = np.where(stale, s * policy.stale_sigma_factor, s)
    else:
        prior = np.maximum(np.asarray(sigma_prior, dtype=float), s)
        s = np.where(stale, s + frac * (prior - s), s)
    dropped = (q == "bad") | (age > policy.max_age_s) | ~np.isfinite(age)
    return np.where(dropped, np.inf, s)


@dataclass(frozen=True)
class VoltageSensors:
    """Voltage magnitude meters at buses: (T, n) values and σ in pu; σ = inf means absent this period."""

    bus: npt.NDArray[np.int64]  # pandapower bus index per sensor
    u_pu: FloatArray
    sigma_pu: FloatArray
    source: tuple[str, ...]  # what each is: "substation:HV/MV", "site:<id>", "pseudo:ext_grid"


@dataclass(frozen=True)
class LoadSensors:
    """One appliance sensor per pandapower load: metered where `metered`, else its pseudo-measurement.

    All arrays (T, n_loads) in kW / kvar, load-positive. σ = inf: no information this period.
    """

    load: npt.NDArray[np.int64]  # pandapower load index per column
    p_kw: FloatArray
    q_kvar: FloatArray
    sigma_p_kw: FloatArray
    sigma_q_kvar: FloatArray
    metered: BoolArray  # (T, n): True = a real meter reading, False = pseudo-measurement
    pseudo_p_kw: FloatArray  # the pseudo value and σ that replace a reading dropped as bad data
    pseudo_sigma_p_kw: FloatArray
    site: tuple[str, ...]  # site id or "" per load


@dataclass(frozen=True)
class FlowSensors:
    """Branch-end power meters (substation meters): (T, n) in kW / kvar, power into the branch."""

    branch: tuple[str, ...]  # "trafo:<pp index>" or "line:<pp index>"
    side: tuple[Side, ...]
    p_kw: FloatArray
    q_kvar: FloatArray
    sigma_p_kw: FloatArray
    sigma_q_kvar: FloatArray
    source: tuple[str, ...]


def _empty_flows(n_steps: int) -> FlowSensors:
    z = np.zeros((n_steps, 0))
    return FlowSensors((), (), z, z.copy(), z.copy(), z.copy(), ())


@dataclass(frozen=True)
class MeasurementBatch:
    """Every measurement of T periods. Sensor sets are fixed; σ = inf switches one off in a period."""

    voltage: VoltageSensors
    loads: LoadSensors
    flows: FlowSensors = field(default_factory=lambda: _empty_flows(1))

    @property
    def n_steps(self) -> int:
        """Number of periods."""
        return int(self.loads.p_kw.shape[0])

    def step(self, t: int) -> MeasurementBatch:
        """The measurements of period `t` alone (a batch of one)."""
        sl = slice(t, t + 1)
        v, ld, fl = self.voltage, self.loads, self.flows
        return MeasurementBatch(
            VoltageSensors(v.bus, v.u_pu[sl], v.sigma_pu[sl], v.source),
            replace(
                ld,
                p_kw=ld.p_kw[sl],
                q_kvar=ld.q_kvar[sl],
                sigma_p_kw=ld.sigma_p_kw[sl],
                sigma_q_kvar=ld.sigma_q_kvar[sl],
                metered=ld.metered[sl],
                pseudo_p_kw=ld.pseudo_p_kw[sl],
                pseudo_sigma_p_kw=ld.pseudo_sigma_p_kw[sl],
            ),
            replace(
                fl,
                p_kw=fl.p_kw[sl],
                q_kvar=fl.q_kvar[sl],
                sigma_p_kw=fl.sigma_p_kw[sl],
                sigma_q_kvar=fl.sigma_q_kvar[sl],
            ),
        )

    def with_pseudo(self, t: int, load_col: int) -> MeasurementBatch:
        """This batch with load column `load_col` in period `t` replaced by its pseudo-measurement."""
        ld = self.loads
        p, sp, m = ld.p_kw.copy(), ld.sigma_p_kw.copy(), ld.metered.copy()
        p[t, load_col] = ld.pseudo_p_kw[t, load_col]
        sp[t, load_col] = ld.pseudo_sigma_p_kw[t, load_col]
        m[t, load_col] = False
        return replace(self, loads=replace(ld, p_kw=p, sigma_p_kw=sp, metered=m))

    def with_pseudo_widened(self, t: int, load_cols: npt.ArrayLike, factor: float) -> MeasurementBatch:
        """This batch with the pseudo-measurements among `load_cols` in period `t` given σ × `factor` (P and Q).

        Real meter readings in `load_cols` are left as they are: only a forecast's σ is widened.
        """
        if not factor >= 1.0:
            raise ValueError("a widening factor must be >= 1")
        ld = self.loads
        cols = np.asarray(load_cols, dtype=np.int64)
        cols = cols[~ld.metered[t, cols]]
        sp, sq, ps = ld.sigma_p_kw.copy(), ld.sigma_q_kvar.copy(), ld.pseudo_sigma_p_kw.copy()
        sp[t, cols] *= factor
        sq[t, cols] *= factor
        ps[t, cols] *= factor
        return replace(self, loads=replace(ld, sigma_p_kw=sp, sigma_q_kvar=sq, pseudo_sigma_p_kw=ps))

    def without_voltage(self, t: int, col: int) -> MeasurementBatch:
        """This batch with voltage sensor `col` switched off in period `t`."""
        s = self.voltage.sigma_pu.copy()
        s[t, col] = np.inf
        return replace(self, voltage=replace(self.voltage, sigma_pu=s))

    def without_flow(self, t: int, col: int) -> MeasurementBatch:
        """This batch with flow sensor `col` switched off in period `t`."""
        sp, sq = self.flows.sigma_p_kw.copy(), self.flows.sigma_q_kvar.copy()
        sp[t, col] = np.inf
        sq[t, col] = np.inf
        return replace(self, flows=replace(self.flows, sigma_p_kw=sp, sigma_q_kvar=sq))


@dataclass(frozen=True)
class LoadReadings:
    """Meter readings of the loads: (T, n) kW, NaN where a load has no meter or no reading."""

    p_kw: FloatArray
    q_kvar: FloatArray | None = None  # None: the meters report active power only
    quality: npt.NDArray[np.str_] | None = None  # default "good"
    age_s: FloatArray | None = None  # default 0 s


@dataclass(frozen=True)
class LoadForecast:
    """The forecast quantiles of every load, (T, n) kW: the pseudo-measurements."""

    p10_kw: FloatArray
    p50_kw: FloatArray
    p90_kw: FloatArray


@dataclass(frozen=True)
class SensorSpec:
    """How readings become sensors: meter class and rating, quality policy, the Q pseudo-value."""

    meter: MeterClass
    rated_kw: FloatArray | float
    policy: QualityPolicy = field(default_factory=QualityPolicy)
    cos_phi: FloatArray | float = 0.95
    q_sigma_frac: float = 0.3
    sigma_floor_kw: float = 0.05


def load_sensors(
    load_idx: npt.NDArray[np.int64],
    readings: LoadReadings,
    forecast: LoadForecast,
    spec: SensorSpec,
    site: Sequence[str] = (),
) -> LoadSensors:
    """Appliance sensors for every load: its meter reading where usable, else its pseudo-measurement.

    The meter's rating sets its low-current floor. Q is metered only if the readings have
    it, else a pseudo-value at `spec.cos_phi` with σ = `q_sigma_frac` · |S|.
    """
    reading_p_kw, reading_q_kvar, quality, age_s = (
        readings.p_kw,
        readings.q_kvar,
        readings.quality,
        readings.age_s,
    )
    p10_kw, p50_kw, p90_kw = forecast.p10_kw, forecast.p50_kw, forecast.p90_kw
    meter, rated_kw, policy = spec.meter, spec.rated_kw, spec.policy
    cos_phi, q_sigma_frac, sigma_floor_kw = spec.cos_phi, spec.q_sigma_frac, spec.sigma_floor_kw
    p_read = np.atleast_2d(np.asarray(reading_p_kw, dtype=float))
    shape = p_read.shape
    p50 = np.broadcast_to(np.asarray(p50_kw, dtype=float), shape)
    sig_pseudo = np.broadcast_to(pseudo_sigma_kw(p10_kw, p90_kw, sigma_floor_kw), shape)
    rated = np.broadcast_to(np.asarray(rated_kw, dtype=float), shape)
    sig_meter = meter_sigma(np.nan_to_num(p_read), 1.0, meter)
    sig_meter = np.maximum(sig_meter, meter.class_pct / 100.0 * meter.p_floor_frac * rated / 3.0)
    q_arr = np.full(shape, "good") if quality is None else np.broadcast_to(np.asarray(quality), shape)
    age = np.zeros(shape) if age_s is None else np.broadcast_to(np.asarray(age_s, dtype=float), shape)
    sig_meter = age_widened_sigma(sig_meter, sig_pseudo, age, q_arr, policy)
    metered = np.isfinite(p_read) & np.isfinite(sig_meter)
    p = np.where(metered, p_read, p50)
    sp = np.where(metered, sig_meter, sig_pseudo)
    cphi = np.clip(np.broadcast_to(np.asarray(cos_phi, dtype=float), shape), 0.05, 1.0)
    tan_phi = np.sqrt(1.0 - cphi**2) / cphi
    if reading_q_kvar is None:
        q = p * tan_phi
        sq = np.maximum(q_sigma_frac * np.abs(p) / cphi, sigma_floor_kw)
    else:
        q_read = np.broadcast_to(np.asarray(reading_q_kvar, dtype=float), shape)
        q_ok = metered & np.isfinite(q_read)
        q = np.where(q_ok, q_read, p * tan_phi)
        sq_meter = np.maximum(meter_sigma(np.nan_to_num(q_read), 1.0, meter), sig_meter)
        sq = np.where(q_ok, sq_meter, np.maximum(q_sigma_frac * np.abs(p) / cphi, sigma_floor_kw))
    sites = tuple(site) if site else ("",) * shape[1]
    return LoadSensors(
        load=np.asarray(load_idx, dtype=np.int64),
        p_kw=p,
        q_kvar=q,
        sigma_p_kw=sp,
        sigma_q_kvar=sq,
        metered=metered,
        pseudo_p_kw=np.array(p50),
        pseudo_sigma_p_kw=np.array(sig_pseudo),
        site=sites,
    )
