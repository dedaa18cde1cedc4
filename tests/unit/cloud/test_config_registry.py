"""cloud.yaml and registry errors name file, key and reason; a manifest becomes a registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloud_controller.config import CloudConfig, load_cloud_config
from cloud_controller.registry import load_registry, registry_from_manifest
from protocols.errors import ConfigError


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "cloud.yaml").write_text("control: {period_s: 300}\nstore: {path: data/s.sqlite}\n")
    cfg = load_cloud_config(tmp_path / "cloud.yaml")
    assert cfg.control.period_s == 300 and cfg.store.path == tmp_path / "data/s.sqlite"
    assert CloudConfig().control.period_s == 900


def test_the_market_files_are_relative_to_the_config_file_too(tmp_path: Path) -> None:
    (tmp_path / "cloud.yaml").write_text(
        "market:\n"
        "  store_path: m/market.sqlite\n"
        "  dso_token_file: keys/dso.token\n"
        "  fsps: {agg1: {token_file: keys/agg1.token}}\n"
        "  uftp: {store_path: m/uftp.sqlite, signing_key_file: /etc/gridflex/uftp.key}\n"
    )
    market = load_cloud_config(tmp_path / "cloud.yaml").market
    assert market.store_path == tmp_path / "m/market.sqlite"
    assert market.dso_token_file == tmp_path / "keys/dso.token"
    assert market.fsps["agg1"].token_file == tmp_path / "keys/agg1.token"
    assert market.uftp.store_path == tmp_path / "m/uftp.sqlite"
    assert market.uftp.signing_key_file == Path("/etc/gridflex/uftp.key")  # absolute stays


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("control: {period_s: 30}\n", "control.period_s", "greater than or equal to 60"),
        ("brokr: {}\n", "brokr", "unknown key 'brokr' (did you mean 'broker'?)"),
        ("store: {kind: influxdb}\n", "store", "token_file"),
    ],
)
def test_bad_config_names_key(tmp_path: Path, text: str, key: str, reason: str) -> None:
    path = tmp_path / "cloud.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_cloud_config(path)
    assert err.value.key == key and reason in str(err.value) and str(path) in str(err.value)


def test_registry_yaml_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "reg.yaml"
    path.write_text(
        "sites:\n  - {site: b001, region_site: 3, assets: [{asset: ev1, kind: ev, p_nominal_kw: 11}]}\n"
    )
    reg = load_registry(path)
    assert reg.site("b001").asset_of("ev") is not None
    assert reg.site("b001").assets[0].p_guaranteed_min_kw == 4.2  # §14a default for EV/HP
    path.write_text("sites:\n  - {site: b001, region_site: 3, assets: [{asset: ev1, kind: car}]}\n")
    with pytest.raises(ConfigError) as err:
        load_registry(path)
    assert err.value.key == "sites[0].assets[0].kind"
    path.write_text("sites:\n  - {site: B!, region_site: 3}\n")
    with pytest.raises(ConfigError, match="invalid site id"):
        load_registry(path)


def test_manifest_registry_is_deterministic(tmp_path: Path) -> None:
    doc = {
        "created": "2030-01-15T00:00:00Z",
        "start": "2030-01-15T00:00:00Z",
        "seed": 1,
        "step_s": 1.0,
        "broker_host": "127.0.0.1",
        "broker_port": 1883,
        "sites": [
            {
                "site": f"b00{i}",
                "config": f"/tmp/b00{i}.yaml",
                "assets": [
                    {
                        "id": "bat1",
                        "kind": "battery",
                        "device": "battery",
                        "p_nominal_kw": 5,
                        "capacity_kwh": 10,
                    }
                ],
                "modbus": [],
            }
            for i in range(1, 4)
        ],
    }
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(doc))
    a, b = registry_from_manifest(path, 319, seed=1), registry_from_manifest(path, 319, seed=1)
    assert [s.region_site for s in a.sites] == [s.region_site for s in b.sites]
    assert len({s.region_site for s in a.sites}) == 3
    assert a.site("b002").asset_of("battery").capacity_kwh == 10.0  # type: ignore[union-attr]


def test_shipped_examples_validate() -> None:
    root = Path(__file__).resolve().parents[3]
    cfg = load_cloud_config(root / "examples" / "cloud.yaml")
    assert cfg.registry is not None
    reg = load_registry(cfg.registry, n_region_sites=319)
    assert reg.ids == ["b001", "b002", "b003"]  # the buildings of `gridflex sim --sites 3`
    deploy = load_cloud_config(root / "deploy" / "cloud.yaml")
    assert (
        deploy.store.kind == "postgres"
        and deploy.broker.tls is not None
        and deploy.broker.tls.cert_file is not None
    )
