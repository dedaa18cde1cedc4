"""`BatchPowerFlow(injections=True)`: sgens, storages, shunts and several ext_grids as pandapower's `runpp`.

Off by default (the dispatch AC check and the estimator do not model these tables): then a net
with an in-service sgen is still refused with the table named.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from cloud_controller.grid.powerflow import BatchPowerFlow
from protocols.errors import ConfigError
from tests.unit.forecast.test_probabilistic_meshed import ring_with_injections


def test_without_injections_an_sgen_is_still_refused() -> None:
    with pytest.raises(ConfigError, match="'sgen' is not supported"):
        BatchPowerFlow(ring_with_injections())


def test_with_injections_the_ring_is_runpp_with_both_feeds() -> None:
    import pandapower as pp

    net = ring_with_injections()
    net.load["q_mvar"] = 0.0
    site_kw = np.array([900.0, 600.0, 1000.0, 700.0, 400.0, 1300.0, 500.0])
    pf = BatchPowerFlow(net, injections=True)
    res = pf.run(site_kw[None, :], keep_bus_voltages=True)
    net.load["p_mw"] = site_kw / 1000.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(net, calculate_voltage_angles=True, numba=False)
    assert res.bus_vm_pu is not None and res.bus_idx is not None
    np.testing.assert_allclose(res.bus_vm_pu[0], net.res_bus.vm_pu.loc[res.bus_idx], atol=1e-5)
    # both sources' import, and the modelled load net of the generation (sgen 0.7 + 0.2, storage +0.3)
    assert res.p_root_kw[0] == pytest.approx(1000.0 * net.res_ext_grid.p_mw.sum(), abs=0.05)
    assert res.p_load_kw[0] == pytest.approx(site_kw.sum() - 700.0 - 200.0 + 300.0, abs=1e-6)
    assert res.line_loading_max[0] * 100.0 == pytest.approx(net.res_line.loading_percent.max(), abs=0.01)
