"""Line and transformer parameters as pandapower's DC power flow sees them (pd2ppc, trafo model "t").

Why a port rather than a call to pandapower's private `_pd2ppc`: the translation runs on
every solve, pandapower's is most of `rundcopp`'s time, and its internals move between
releases. The formulas follow pandapower 3.5 (`build_branch.py`) term by term; a test
compares the result with `_pd2ppc`'s branch matrix on every reference case.

Lines: ``x_pu = x_ohm_per_km * length_km / parallel / (vn_from_kv² / sn_mva)`` and
``rating = max_loading_percent / 100 * max_i_ka * df * parallel * vn_from_kv * √3``.
Transformers: the short-circuit impedance on the low-voltage side (tap-adjusted rated
voltage), the T-equivalent turned into a pi (`_wye_delta`) when the magnetising branch is
not zero, the off-nominal ratio ``(vn_hv / vn_lv) / (vn_hv_bus / vn_lv_bus)`` with the tap
applied on its side, and the shift ``shift_degree`` plus what a phase-shifting tap adds.
Rating: ``max_loading_percent / 100 * sn_mva * df * parallel``. Without a
``max_loading_percent`` column (or with NaN) rundcopp sets no limit, and neither do we.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cloud_controller.grid.meshed.network import FloatArray
from protocols.errors import ConfigError


def _col(df: Any, name: str, default: float) -> FloatArray:
    if name not in df.columns:
        return np.full(len(df), default, dtype=float)
    return np.asarray(df[name].to_numpy(dtype=float, na_value=np.nan), dtype=float)


def _text(df: Any, name: str) -> np.ndarray:
    if name not in df.columns:
        return np.full(len(df), "", dtype=object)
    return np.asarray([v if isinstance(v, str) else "" for v in df[name].to_numpy()], dtype=object)


def _rating(max_loading: FloatArray, full_mva: FloatArray) -> FloatArray:
    """|P| limit in MW; rundcopp enforces a branch's RATE_A only when it is finite and not 0."""
    rate = max_loading / 100.0 * full_mva
    return np.where(np.isfinite(rate) & (rate != 0.0), np.abs(rate), np.inf)


def line_params(line: Any, vn_from_kv: FloatArray, sn_mva: float) -> tuple[FloatArray, FloatArray]:
    """(x_pu, rating_mw) of in-service lines, x on the net's base at the from-bus voltage."""
    base_ohm = vn_from_kv**2 / sn_mva
    parallel = _col(line, "parallel", 1.0)
    x_pu = (
        line.x_ohm_per_km.to_numpy(dtype=float) * line.length_km.to_numpy(dtype=float) / base_ohm / parallel
    )
    full = line.max_i_ka.to_numpy(dtype=float) * _col(line, "df", 1.0) * parallel * vn_from_kv * np.sqrt(3.0)
    return x_pu, _rating(_col(line, "max_loading_percent", np.nan), full)


def _tap_shift(trafo: Any, t: str, vnh: FloatArray, vnl: FloatArray, shift_deg: FloatArray) -> None:
    """Apply tap changer `t` ("" or "2") to the rated voltages and the shift, in place.

    Pandapower's `_calc_tap_from_dataframe` without characteristic tables: a "Ratio" or
    "Symmetrical" changer moves the voltage of its side by ``tap_step_percent`` per step
    (at ``tap_step_degree``, which also shifts the angle); an "Ideal" phase shifter only
    shifts, by ``tap_step_degree`` per step or ``2·asin(step_percent / 200)``.
    """
    if f"tap{t}_pos" not in trafo.columns:
        return
    kind = _text(trafo, f"tap{t}_changer_type")
    side = _text(trafo, f"tap{t}_side")
    diff = np.nan_to_num(_col(trafo, f"tap{t}_pos", np.nan) - _col(trafo, f"tap{t}_neutral", np.nan))
    step_pct = _col(trafo, f"tap{t}_step_percent", np.nan)
    step_deg = _col(trafo, f"tap{t}_step_degree", np.nan)
    for name, vn, direction in (("hv", vnh, 1.0), ("lv", vnl, -1.0)):
        ideal = (kind == "Ideal") & (side == name)
        if ideal.any():
            deg_set = np.nan_to_num(step_deg, nan=0.0) != 0
            by_deg = direction * diff * np.nan_to_num(step_deg)
            by_pct = direction * 2 * np.rad2deg(np.arcsin(diff * np.nan_to_num(step_pct) / 100 / 2))
            shift_deg[ideal] += np.where(deg_set, by_deg, by_pct)[ideal]
        ratio = ((kind == "Ratio") | (kind == "Symmetrical")) & (side == name)
        if ratio.any():
            angle = np.deg2rad(np.nan_to_num(step_deg, nan=0.0))
            du = vn * np.nan_to_num(step_pct * diff / 100, nan=0.0)
            re, im = vn + du * np.cos(angle), du * np.sin(angle)
            shift_deg[ratio] += np.rad2deg(np.arctan(direction * im / re))[ratio]
            vn[ratio] = np.sqrt(re**2 + im**2)[ratio]


def _wye_delta(r: FloatArray, x: FloatArray, g: FloatArray, b: FloatArray, trafo: Any) -> FloatArray:
    """Series reactance of the pi-equivalent of the T model (pandapower's `_wye_delta`)."""
    x = x.copy()
    t = (g != 0) | (b != 0)
    if not t.any():
        return x
    r_ratio = _col(trafo, "leakage_resistance_ratio_hv", 0.5)[t]
    x_ratio = _col(trafo, "leakage_reactance_ratio_hv", 0.5)[t]
    za = r[t] * r_ratio + 1j * x[t] * x_ratio
    zb = r[t] * (1 - r_ratio) + 1j * x[t] * (1 - x_ratio)
    zc = 1 / (g[t] + 1j * b[t])
    x[t] = ((za * zb + za * zc + zb * zc) / zc).imag
    return x


def trafo_params(
    trafo: Any, vn_hv_bus_kv: FloatArray, vn_lv_bus_kv: FloatArray, sn_mva: float
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """(x_pu, tap ratio, shift_rad, rating_mw) of in-service two-winding transformers."""
    if (
        "tap_dependency_table" in trafo.columns
        and trafo.tap_dependency_table.fillna(False).astype(bool).any()
    ):
        raise ConfigError("tap-dependent transformer impedance tables are not supported", key="trafo")
    vnh = trafo.vn_hv_kv.to_numpy(dtype=float).copy()
    vnl = trafo.vn_lv_kv.to_numpy(dtype=float).copy()
    shift = _col(trafo, "shift_degree", 0.0).copy()
    for t in ("", "2"):
        _tap_shift(trafo, t, vnh, vnl, shift)
    parallel = _col(trafo, "parallel", 1.0)
    sn_trafo = trafo.sn_mva.to_numpy(dtype=float)
    tap_lv = (vnl / vn_lv_bus_kv) ** 2 * sn_mva
    z_sc = trafo.vk_percent.to_numpy(dtype=float) / 100.0 / sn_trafo * tap_lv
    r_sc = trafo.vkr_percent.to_numpy(dtype=float) / 100.0 / sn_trafo * tap_lv
    x_sc = np.sign(z_sc) * np.sqrt(z_sc**2 - r_sc**2)
    r, x = r_sc / parallel, x_sc / parallel
    # magnetising admittance on the net's base at the low-voltage side (`_calc_y_from_dataframe`)
    base_z = vn_lv_bus_kv**2 / sn_mva
    rated_lv = trafo.vn_lv_kv.to_numpy(dtype=float)
    pfe_mw = _col(trafo, "pfe_kw", 0.0) * 1e-3
    ym_mva = _col(trafo, "i0_percent", 0.0) / 100 * sn_trafo
    b_mva = -np.sqrt(np.clip(ym_mva**2 - pfe_mw**2, 0.0, None))
    scale = base_z * parallel / rated_lv**2 / (vnl / rated_lv) ** 2
    x = _wye_delta(r, x, pfe_mw * scale, b_mva * scale, trafo)
    ratio = (vnh / vnl) / (vn_hv_bus_kv / vn_lv_bus_kv)
    full = sn_trafo * _col(trafo, "df", 1.0) * parallel
    return x, ratio, np.deg2rad(shift), _rating(_col(trafo, "max_loading_percent", np.nan), full)
