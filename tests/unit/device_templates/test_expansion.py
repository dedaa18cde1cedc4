"""`template:` devices expand into exactly the points the hand-written site YAML had, and a wrong
template, override key or override value is a ConfigError naming file, key and reason."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from device_templates import PointOverride, builtin, builtin_catalog, template_points
from edge_agent.config import SiteConfig, load_config
from protocols.assets import STANDARD_ASSET_ID
from protocols.errors import ConfigError
from protocols.testbed import BacnetEndpoint, ModbusEndpoint
from simulators.building import Building
from simulators.devices import Battery, EvCharger, HeatPump, PvInverter
from simulators.siteconfig import DEVICE_TEMPLATES, SUBSTATION_TEMPLATE, site_config

HERE = Path(__file__).parent
BEFORE = HERE / "site_before_templates.yaml"  # what simulators.siteconfig wrote before templates


def _building() -> Building:
    """The building the snapshot was written for (every asset, non-default ratings)."""
    return Building(
        site="b007",
        profiles=None,  # type: ignore[arg-type]  # site_config reads ratings only
        pv=PvInverter(kwp=6.5, inverter_kw=6.0),
        battery=Battery(
            capacity_kwh=12.0, p_charge_max_kw=4.0, p_discharge_max_kw=3.5, soc_min_pct=10.0, soc_max_pct=95.0
        ),
        ev=EvCharger(p_max_kw=7.4),
        hp=HeatPump(p_max_kw=6.0, tank_l=800.0),
    )


def _templated_doc() -> dict[str, Any]:
    modbus = [
        ModbusEndpoint(device=d, map="sunspec-meter", host="127.0.0.1", port=15020 + i, unit_id=1)
        for i, d in enumerate(["meter", "pv", "battery", "ev", "hp"])
    ]
    bacnet = BacnetEndpoint(address="127.0.0.1:47809", device_id=100007)
    return site_config(
        _building(), {}, modbus, bacnet, broker_host="127.0.0.1", broker_port=1883, state_dir=Path("state")
    )


def _load(tmp_path: Path, doc: dict[str, Any], name: str = "site.yaml") -> SiteConfig:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_config(path)


@pytest.fixture
def before(tmp_path: Path) -> SiteConfig:
    shutil.copy(BEFORE, tmp_path / "before.yaml")
    return load_config(tmp_path / "before.yaml")


def test_simulator_site_yaml_uses_templates(tmp_path: Path) -> None:
    doc = _templated_doc()
    assert [d.get("template") for d in doc["devices"]] == [*DEVICE_TEMPLATES.values(), "bacnet-bms"]
    assert all("points" not in a for a in doc["assets"])


def test_templated_site_expands_to_the_hand_written_site(tmp_path: Path, before: SiteConfig) -> None:
    after = _load(tmp_path, _templated_doc())
    assert after.devices == before.devices
    assert after.assets == before.assets  # every point, in order, with every field
    assert sum(len(a.points) for a in after.assets) == 27


@pytest.mark.parametrize("device", ["meter", "pv", "battery", "ev", "hp", "bms"])
def test_each_builtin_template_gives_exactly_the_old_points_of_its_device(
    device: str, before: SiteConfig
) -> None:
    old = yaml.safe_load(BEFORE.read_text())
    want = [p for a in old["assets"] for p in a["points"] if p["device"] == device]
    dev = next(d for d in _templated_doc()["devices"] if d["id"] == device)
    overrides = {k: PointOverride.model_validate(v) for k, v in dev.get("overrides", {}).items()}
    got = template_points(builtin(dev["template"]), device_id=device, overrides=overrides)
    by_asset: dict[str, list[dict[str, Any]]] = {}
    for role, p in got:
        by_asset.setdefault(STANDARD_ASSET_ID[role], []).append(p)
    assert by_asset == {
        a["id"]: [p for p in a["points"] if p["device"] == device]
        for a in old["assets"]
        if any(p["device"] == device for p in a["points"])
    }
    assert sum(map(len, by_asset.values())) == len(want)


def test_address_offset_and_overrides_apply(tmp_path: Path) -> None:
    doc = yaml.safe_load(BEFORE.read_text())
    doc["devices"] = [d for d in doc["devices"] if d["id"] == "ev"]
    doc["devices"][0].update(
        template="vendor-ev",
        address_offset=100,
        overrides={"p_limit_kw": {"max": 5.5, "deadband": 0.2}, "state": {"enabled": False}},
    )
    ev = next(a for a in doc["assets"] if a["id"] == "ev1")
    ev.pop("points")
    ev["limits"]["p_max_kw"] = 5.5
    ev["safe_state"] = [{"point": "p_limit_kw", "write": 5.5}]
    doc["assets"] = [ev]
    cfg = _load(tmp_path, doc)
    pts = {p.name: p for p in cfg.asset("ev1").points}
    assert sorted(pts) == ["e_remaining_kwh", "p_kw", "p_limit_kw"]
    assert (
        pts["p_limit_kw"].address == 103
        and pts["p_limit_kw"].max == 5.5
        and pts["p_limit_kw"].deadband == 0.2
    )
    assert pts["p_kw"].address == 101


def _bad(tmp_path: Path, edit: Any) -> ConfigError:
    doc = _templated_doc()
    edit(doc)
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, doc)
    return info.value


@pytest.mark.parametrize(
    ("edit", "key", "reason"),
    [
        (
            lambda d: d["devices"][1].update(template="sunspec-inverterr"),
            "devices[1].template",
            "unknown template 'sunspec-inverterr' (known: bacnet-bms, sunspec-inverter, sunspec-meter,",
        ),
        (
            lambda d: d["devices"][3].update(overrides={"p_limit_kw": {"hii": 3.0}}),
            "devices[3].overrides.p_limit_kw.hii",
            "unknown override key 'hii' (allowed: min, max,",
        ),
        (
            lambda d: d["devices"][3].update(overrides={"p_limit_kw": {"max": "lots"}}),
            "devices[3].overrides.p_limit_kw.max",
            "valid number",
        ),
        (
            lambda d: d["devices"][3].update(overrides={"p_limitt_kw": {"max": 3.0}}),
            "devices[3].overrides.p_limitt_kw",
            "no point 'p_limitt_kw' in template 'vendor-ev'",
        ),
        (
            lambda d: d["devices"][2].update(assets={"batery": "bat1"}),
            "devices[2].assets.batery",
            "unknown role 'batery'",
        ),
        (
            lambda d: d["devices"][2].update(assets={"battery": "bat9"}),
            "devices[2].assets.battery",
            "no asset 'bat9'",
        ),
        (
            lambda d: d["devices"][5].update(template="vendor-hp"),
            "devices[5].driver",
            "template 'vendor-hp' is a modbus device",
        ),
        (lambda d: d.update(template_dirs="x"), "template_dirs", "a list of folder paths"),
    ],
    ids=[
        "unknown-template",
        "unknown-override-key",
        "bad-override-value",
        "unknown-point",
        "unknown-role",
        "missing-asset",
        "wrong-driver",
        "bad-dirs",
    ],
)
def test_a_bad_template_device_names_file_key_and_reason(
    tmp_path: Path, edit: Any, key: str, reason: str
) -> None:
    err = _bad(tmp_path, edit)
    assert err.file == str(tmp_path / "site.yaml")
    assert err.key == key
    assert reason in err.reason, err.reason


def test_a_bad_user_template_names_its_own_file(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "acme.yaml").write_text(
        "name: acme\ndriver: modbus\nregisters: [{name: x, address: 1, type: int17}]\n"
    )
    err = _bad(tmp_path, lambda d: d.update(template_dirs=["mine"]))
    assert err.file == str(tmp_path / "mine" / "acme.yaml")
    assert err.key == "registers[0].type"


def test_builtin_templates_are_the_device_types_the_simulators_serve() -> None:
    assert sorted(builtin_catalog()) == sorted(
        [*DEVICE_TEMPLATES.values(), "bacnet-bms", SUBSTATION_TEMPLATE]
    )


def test_shipped_template_example_validates() -> None:
    cfg = load_config(HERE.parents[2] / "examples" / "site-templates.yaml")
    assert [p.name for p in cfg.asset("meter").points] == [
        "p_kw",
        "e_import_kwh",
        "e_export_kwh",
        "grid_target_kw",
        "battery_mode",
    ]
    assert [p.name for p in cfg.asset("ev1").points] == ["p_kw", "e_remaining_kwh", "p_limit_kw"]
    assert cfg.asset("bat1").point("p_setpoint_kw").min == -4.0
