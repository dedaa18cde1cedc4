"""Grid meters in the registry: from a registry YAML, from substations.json beside a manifest, and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandapower as pp
import pytest

from cloud_controller.config import CloudConfig
from cloud_controller.live.types import GridMeterRef
from cloud_controller.registry import SUBSTATIONS_FILE, Registry, load_registry
from cloud_controller.service import CloudController
from protocols.clock import RealClock
from protocols.errors import ConfigError
from tests.unit.grid.estimate.cases import small_net, truth

SITE = "sites:\n  - {site: b001, region_site: 0, assets: [{asset: meter, kind: meter}]}\n"


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(text)
    return path


def test_yaml_grid_meters_are_loaded_apart_from_the_sites(tmp_path: Path) -> None:
    reg = load_registry(
        _yaml(
            tmp_path,
            SITE + "grid_meters:\n  - {site: sub-s1, station: S1}\n  - {site: sub-s2, station: S2}\n",
        )
    )
    assert reg.ids == ["b001"]
    assert reg.meter_ids == ["sub-s1", "sub-s2"]
    assert reg.grid_meters == (GridMeterRef("sub-s1", "S1"), GridMeterRef("sub-s2", "S2"))
    reg.check_stations({"S1", "S2", "S3"})  # all in the region: no error


def test_a_registry_without_grid_meters_loads_as_before(tmp_path: Path) -> None:
    reg = load_registry(_yaml(tmp_path, SITE))
    assert reg.ids == ["b001"] and reg.grid_meters == () and reg.meter_ids == []
    assert Registry(sites=reg.sites).grid_meters == ()  # the positional/keyword form of old callers


@pytest.mark.parametrize(
    ("meters", "key", "reason"),
    [
        ("grid_meters: {site: sub-s1}\n", "grid_meters", "must be a list"),
        ("grid_meters:\n  - {site: sub-s1}\n", "grid_meters[0]", "missing 'station'"),
        ("grid_meters:\n  - {site: sub-s1, station: 7}\n", "grid_meters[0].station", "non-empty string"),
        ("grid_meters:\n  - {site: sub-s1, station: S1, kw: 3}\n", "grid_meters[0].kw", "kw"),
        ("grid_meters:\n  - {site: 'sub s1', station: S1}\n", "grid_meters[0].site", "site id"),
        ("grid_meters:\n  - {site: b001, station: S1}\n", "grid_meters", "'b001' registered twice"),
        (
            "grid_meters:\n  - {site: sub-a, station: S1}\n  - {site: sub-b, station: S1}\n",
            "grid_meters",
            "two grid meters on station 'S1'",
        ),
        ("grid_meter:\n  - {site: sub-s1, station: S1}\n", "grid_meter", "grid_meter"),
    ],
)
def test_bad_grid_meter_entries_name_file_key_and_reason(
    tmp_path: Path, meters: str, key: str, reason: str
) -> None:
    path = _yaml(tmp_path, SITE + meters)
    with pytest.raises(ConfigError) as err:
        load_registry(path)
    assert err.value.file == str(path)
    assert err.value.key == key
    assert reason in err.value.reason


def test_a_station_not_in_the_region_is_named() -> None:
    reg = Registry(sites=(), grid_meters=(GridMeterRef("sub-s1", "S1"), GridMeterRef("sub-x", "Nowhere")))
    with pytest.raises(ConfigError) as err:
        reg.check_stations(["S1", "S2"])
    assert err.value.key == "grid_meters[1].station"
    assert "'Nowhere' is not in the region (2 MV/LV stations)" in err.value.reason
    with pytest.raises(ConfigError, match="'Nowhere'"):
        Registry(sites=(), grid_meters=reg.grid_meters[1:]).check_stations(
            {"station 0": 3, "station 1": 4}
        )  # Region.station_branch: name -> branch
    assert "sub-x" in err.value.reason


def _manifest(tmp_path: Path) -> Path:
    path = tmp_path / "manifest.json"
    doc = {
        "created": "2030-01-15T00:00:00Z",
        "start": "2030-01-15T00:00:00Z",
        "seed": 1,
        "step_s": 1.0,
        "broker_host": "127.0.0.1",
        "broker_port": 1883,
        "sites": [{"site": "b001", "config": "/tmp/b001.yaml", "assets": [], "modbus": []}],
    }
    path.write_text(json.dumps(doc))
    return path


def test_substations_json_beside_a_manifest_registers_its_meters(tmp_path: Path) -> None:
    from gridflex.loop import substations

    assert substations.SUBSTATIONS_FILE == SUBSTATIONS_FILE  # what `gridflex sim` writes, the registry reads
    manifest = _manifest(tmp_path)
    assert load_registry(manifest).grid_meters == ()  # a test bed without substations
    listing = {
        "substations": [
            {
                "site": "sub-s1",
                "station": "S1",
                "host": "127.0.0.1",
                "port": 1502,
                "unit_id": 1,
                "config": "x",
            }
        ]
    }
    (tmp_path / SUBSTATIONS_FILE).write_text(json.dumps(listing))
    reg = load_registry(manifest)
    assert reg.ids == ["b001"] and reg.grid_meters == (GridMeterRef("sub-s1", "S1"),)


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("{", None, "not valid JSON"),
        ('{"stations": []}', "substations", "a list `substations`"),
        ('{"substations": [{"site": "sub-s1"}]}', "substations[0]", "missing 'station'"),
        ('{"substations": [{"site": "b001", "station": "S1"}]}', "grid_meters", "registered twice"),
    ],
)
def test_a_bad_substations_json_is_named(tmp_path: Path, text: str, key: str | None, reason: str) -> None:
    manifest = _manifest(tmp_path)
    (tmp_path / SUBSTATIONS_FILE).write_text(text)
    with pytest.raises(ConfigError) as err:
        load_registry(manifest)
    assert err.value.file == str(tmp_path / SUBSTATIONS_FILE)
    assert err.value.key == key and reason in err.value.reason


def test_building_the_planner_checks_the_grid_meters_stations(tmp_path: Path) -> None:
    """The controller's region (stations `station 0`, `station 1`) has no station `Nowhere`: it says so."""
    net_path = tmp_path / "small.json"
    pp.to_json(truth(small_net()), str(net_path))
    cfg = CloudConfig.model_validate(
        {
            "region": {"network": str(net_path), "hvmv_trafo_name": "HV/MV"},
            "broker": {"port": 1, "client_id": "t"},
            "store": {"path": str(tmp_path / "store.sqlite")},
            "api": {"port": 0, "token_file": str(tmp_path / "token")},
        }
    )
    (tmp_path / "token").write_text("s3cret-0123456789abcdef\n")
    reg = Registry(sites=(), grid_meters=(GridMeterRef("sub-nowhere", "Nowhere"),))
    ctl = CloudController(cfg, reg, clock=RealClock())
    try:
        assert list(ctl.meter_snapshots) == ["sub-nowhere"] and ctl.snapshots == {}
        with pytest.raises(
            ConfigError, match=r"grid meter 'sub-nowhere': station 'Nowhere' is not in the region"
        ):
            ctl.planner()
    finally:
        ctl.store.close()
