"""examples/registry.yaml registers exactly the buildings `gridflex sim --sites 3` simulates (seed 1).

The README's path (`gridflex sim --sites 3` + `gridflex cloud --config examples/cloud.yaml`)
once ended with most commands rejected ("unknown asset 'bat1'"): the example named
assets the simulated buildings did not have. The simulators' own asset draw is the truth.
"""

from __future__ import annotations

from pathlib import Path

from cloud_controller.config import load_cloud_config
from cloud_controller.registry import load_registry
from protocols.assets import BATTERY, EV, HP, METER, PV, ZONE
from simulators.fleet import draw_specs

EXAMPLES = Path(__file__).parents[3] / "examples"
SIM_DEFAULT_SITES, SIM_DEFAULT_SEED = 3, 1  # `gridflex sim`'s --sites in the README, its default --seed


def test_example_registry_is_the_simulated_fleet() -> None:
    cfg = load_cloud_config(EXAMPLES / "cloud.yaml")
    assert cfg.registry == EXAMPLES / "registry.yaml"
    registry = load_registry(cfg.registry, n_region_sites=319)
    specs = draw_specs(SIM_DEFAULT_SITES, seed=SIM_DEFAULT_SEED)
    assert registry.ids == [s.site for s in specs]
    for spec, site in zip(specs, registry.sites, strict=True):
        expected: dict[str, float | None] = {METER: None, ZONE: None}  # a meter and a BACnet zone each
        if spec.pv_kwp is not None:
            expected[PV] = None
        if spec.battery_kwh is not None:
            expected[BATTERY] = spec.battery_kwh
        if spec.ev_kw is not None:
            expected[EV] = None
        if spec.hp_kw is not None:
            expected[HP] = None
        assert {a.asset: a.capacity_kwh if a.asset == BATTERY else None for a in site.assets} == expected, (
            site.site
        )
        ev = site.asset_of("ev")
        assert (ev.p_nominal_kw if ev else None) == spec.ev_kw
        bat = site.asset_of("battery")
        assert (bat.p_nominal_kw if bat else None) == spec.battery_kw
