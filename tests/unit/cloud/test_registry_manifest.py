"""A test bed's manifest.json is validated with the contract's schema before it becomes a registry."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import pytest

from cloud_controller.live.types import AssetKindName
from cloud_controller.registry import load_registry
from protocols.assets import Role
from protocols.errors import ConfigError
from protocols.testbed import AssetInfo, Manifest, SiteManifest


def _manifest(tmp_path: Path) -> dict[str, Any]:
    site = SiteManifest(
        site="b001",
        config=tmp_path / "b001.yaml",
        assets=[AssetInfo(id="meter", kind="meter", device="meter")],
        modbus=[],
    )
    m = Manifest(
        created=datetime(2030, 1, 15, tzinfo=UTC),
        start=datetime(2030, 1, 15, tzinfo=UTC),
        seed=1,
        step_s=1.0,
        broker_host="127.0.0.1",
        broker_port=1883,
        sites=[site],
    )
    doc: dict[str, Any] = json.loads(m.model_dump_json())
    return doc


def test_a_valid_manifest_becomes_a_registry(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(_manifest(tmp_path)))
    reg = load_registry(path, n_region_sites=10)
    assert reg.ids == ["b001"]
    assert reg.site("b001").asset_of("meter") is not None


@pytest.mark.parametrize(
    ("edit", "key", "reason"),
    [
        (
            lambda d: d["sites"][0]["assets"][0].update(kind="toaster"),
            "sites[0].assets[0].kind",
            "Input should be",
        ),
        (lambda d: d["sites"][0].pop("config"), "sites[0].config", "Field required"),
        (lambda d: d["sites"][0].update(colour="red"), "sites[0].colour", "Extra inputs"),
        (lambda d: d.update(broker_port="x"), "broker_port", "valid integer"),
    ],
    ids=["bad-kind", "missing-key", "unknown-key", "bad-type"],
)
def test_a_bad_manifest_is_a_config_error_naming_file_key_and_reason(
    tmp_path: Path, edit: Any, key: str, reason: str
) -> None:
    doc = _manifest(tmp_path)
    edit(doc)
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError) as info:
        load_registry(path, n_region_sites=10)
    assert info.value.file == str(path)
    assert info.value.key == key
    assert reason in info.value.reason


def test_a_manifest_that_is_not_json_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match=r"manifest\.json: Invalid JSON"):
        load_registry(path, n_region_sites=10)


def test_the_controllers_asset_kinds_are_the_protocols_roles() -> None:
    assert set(get_args(AssetKindName)) == {r.value for r in Role}
