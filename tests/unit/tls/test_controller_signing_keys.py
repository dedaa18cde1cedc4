"""The controller's signing keys: one file per site named by key id, a second one refused, a bad one named."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud_controller import CloudConfig, Registry, SiteRef
from cloud_controller.service_setup import signing_keys
from protocols.errors import ConfigError
from protocols.signing import SigningKey

REGISTRY = Registry(sites=(SiteRef("b001", 0, ()), SiteRef("b002", 1, ()), SiteRef("b003", 2, ())))


def _keys(folder: Path) -> dict[str, SigningKey]:
    return signing_keys(CloudConfig(signing_keys_dir=folder), REGISTRY)


def test_controller_signs_each_site_under_the_key_id_in_its_file_name(tmp_path: Path) -> None:
    (tmp_path / "b001.k20270101.key").write_text("11" * 32 + "\n")
    (tmp_path / "b002.key").write_text("22" * 32)  # from before key ids: signs without one
    keys = _keys(tmp_path)
    assert keys == {
        "b001": SigningKey(bytes.fromhex("11" * 32), "k20270101"),
        "b002": SigningKey(bytes.fromhex("22" * 32), None),
    }  # b003 has no key: its commands go unsigned (and a site holding keys refuses them)


def test_two_keys_for_one_site_are_refused_naming_both(tmp_path: Path) -> None:
    (tmp_path / "b001.k1.key").write_text("11" * 32)
    (tmp_path / "b001.k2.key").write_text("22" * 32)
    with pytest.raises(ConfigError, match=r"2 keys for site 'b001' \(b001\.k1\.key, b001\.k2\.key\)"):
        _keys(tmp_path)


@pytest.mark.parametrize(
    ("name", "content"),
    [("b001.k1.key", "not hex"), ("b001.bad kid!.key", "11" * 32)],
    ids=["not-hex", "bad-kid"],
)
def test_a_bad_key_file_is_named(tmp_path: Path, name: str, content: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(ConfigError) as info:
        _keys(tmp_path)
    assert info.value.file == str(tmp_path / name)
