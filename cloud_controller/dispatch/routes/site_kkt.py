"""The check that decides: each site's LP optimal for the constructed values (KKT by intervals)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cloud_controller.dispatch.model.problem import FloatArray
from cloud_controller.dispatch.routes.site_market import DUAL_TOL, PRIMAL_TOL, StepData

if TYPE_CHECKING:
    from cloud_controller.dispatch.routes.sites import SiteSolver


def kkt_holds(
    sv: SiteSolver,
    x: StepData,
    lam: FloatArray,
    ci: FloatArray,
    a_dis: FloatArray,
    a_qdis: FloatArray,
    xs: FloatArray,
    shift: float = 0.0,
) -> bool:
    """Optimality of each site's LP for the variables `xs` (11, S).

    The variables are (imp, exp, curt, ch, dis, e_bat, hp, unmet, q_ch, q_dis, e_ts): bounds
    met, and duals exist under which every reduced cost rc has the sign its variable's
    position needs (rc <= 0 where it may move down, rc >= 0 where it may move up, so 0 in
    between). lambda (the site row's dual) is given; each condition on the others is a bound
    on one unknown, so existence is an interval test: the battery row's dual mu_b; the heat
    price lam_h and s = lam_h + dt * mu_t (mu_t the store row's dual), whose difference the
    store's position bounds.
    """
    dt, eta_c, eta_d, cop = sv.dt, sv.eta_c, sv.eta_d, x.cop
    tol, dtol = PRIMAL_TOL, DUAL_TOL
    inf = np.inf
    # The four rows hold by construction (each row's last variable is set from the
    # others above: net exchange, e_bat, unmet heat, e_ts); tests check them.
    # -- bounds -----------------------------------------------------------------------
    lo = sv.lo_template
    hi = sv.hi_template
    hi[2] = x.pv_max_kw
    hi[3] = hi[4] = x.bat_p_max_kw
    lo[5] = x.bat_e_min_kwh
    hi[5] = x.bat_e_max_kwh
    hi[6] = x.hp_cap_kw
    above = xs - lo
    below = hi - xs
    if above.min() < -tol or below.min() < -tol:
        return False
    up = above > tol  # may move down
    dn = below > tol  # may move up
    # -- grid exchange and curtailment: lambda alone ------------------------------------
    rc = np.empty((3, sv.n_sites))
    np.subtract(ci, lam, out=rc[0])
    np.subtract(lam, sv.c_export + shift, out=rc[1])
    np.add(lam, sv.c_curt, out=rc[2])
    if ((up[:3] & (rc > dtol)) | (dn[:3] & (rc < -dtol))).any():
        return False
    # -- battery: rc_ch = k_ch * mu_b - g_ch, rc_dis = g_dis - k_dis * mu_b, rc_e = -mu_b ----
    k_ch, k_dis = eta_c * dt, dt / eta_d
    g_ch = -(sv.a_ch + lam)
    g_dis = a_dis - lam
    mu_hi = np.minimum(
        np.minimum(np.where(up[3], (g_ch + dtol) / k_ch, inf), np.where(dn[4], (g_dis + dtol) / k_dis, inf)),
        np.where(dn[5], dtol, inf),
    )
    mu_lo = np.maximum(
        np.maximum(
            np.where(dn[3], (g_ch - dtol) / k_ch, -inf), np.where(up[4], (g_dis - dtol) / k_dis, -inf)
        ),
        np.where(up[5], -dtol, -inf),
    )
    if (mu_lo > mu_hi).any():
        return False
    # -- heat: rc_hp = lam - cop lam_h, rc_unmet = pen - lam_h, rc_qch = a_qch + s,
    #    rc_qdis = a_qdis - s, rc_e_ts = (lam_h - s) / dt ------------------------------
    pen = sv.pen_unmet
    h_lo = np.maximum(np.where(up[6], (lam - dtol) / cop, -inf), np.where(up[7], pen - dtol, -inf))
    h_hi = np.minimum(np.where(dn[6], (lam + dtol) / cop, inf), np.where(dn[7], pen + dtol, inf))
    s_lo = np.maximum(np.where(dn[8], -sv.a_qch - dtol, -inf), np.where(up[9], a_qdis - dtol, -inf))
    s_hi = np.minimum(np.where(up[8], -sv.a_qch + dtol, inf), np.where(dn[9], a_qdis + dtol, inf))
    d_lo = np.where(up[10], -dt * dtol, -inf)  # bounds on s - lam_h
    d_hi = np.where(dn[10], dt * dtol, inf)
    return not (
        (h_lo > h_hi).any() or (s_lo > s_hi).any() or (s_lo - h_hi > d_hi).any() or (s_hi - h_lo < d_lo).any()
    )
