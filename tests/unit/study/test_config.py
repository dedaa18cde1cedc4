"""The study YAML: shipped example validates, mistakes name file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud_controller.study.config import SCENARIOS, StudyConfig, load_study_config
from protocols.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "schutterwald" / "study.yaml"


def test_shipped_example_equals_the_defaults() -> None:
    cfg = load_study_config(EXAMPLE)
    assert cfg == StudyConfig()
    assert set(SCENARIOS) <= set(cfg.scenarios)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("sizes: {battery_kwh: 0}\n", "sizes.battery_kwh"),
        ("mix: {reference: {pv: 1.5}}\n", "mix.reference.pv"),
        ("scenarios: [stor, bogus]\n", "scenarios"),
        ("curb: {hp_share: 0.3, extra: 1}\n", "curb.extra"),
        ("mpc: {horizon_h: 6, replan_h: 12}\n", ""),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    p = tmp_path / "s.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_study_config(p)
    assert err.value.file == str(p)
    if key:
        assert err.value.key == key


def test_not_yaml_and_missing(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_study_config(p)
    with pytest.raises(ConfigError, match="file not found"):
        load_study_config(tmp_path / "none.yaml")
