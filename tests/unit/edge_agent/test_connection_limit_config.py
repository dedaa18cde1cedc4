"""`grid_connection` validation (file, key, reason) and the pure decision on a DSO's site cap command."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.config import SiteConfig, load_config
from edge_agent.decision import decide
from protocols.errors import ConfigError
from protocols.messages import Command
from protocols.signing import ReplayGuard

EXAMPLE = Path(__file__).parents[3] / "examples" / "site.yaml"
NOW = datetime(2030, 1, 15, 18, tzinfo=UTC)
METER = {
    "id": "meter",
    "kind": "meter",
    "points": [
        {
            "name": "p_kw",
            "device": "inverter",
            "table": "holding",
            "address": 40200,
            "type": "int16",
            "unit": "kW",
        }
    ],
}


def _data(grid_connection: dict[str, Any] | None, *, meter: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    if meter:
        data["assets"].append(METER)
    if grid_connection is not None:
        data["grid_connection"] = grid_connection
    return data


def _load(tmp_path: Path, data: dict[str, Any]) -> SiteConfig:
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path)


def test_grid_connection_loads_with_its_meter(tmp_path: Path) -> None:
    cfg = _load(tmp_path, _data({"import_max_kw": 11.0, "export_max_kw": 7.0, "margin_kw": 0.4}))
    gc = cfg.grid_connection
    assert (gc.import_max_kw, gc.export_max_kw, gc.margin_kw) == (11.0, 7.0, 0.4)
    meter = cfg.site_meter()
    assert meter is not None and meter.id == "meter"
    unlimited = _load(tmp_path, _data(None, meter=False))  # optional: no section, no meter needed
    assert unlimited.grid_connection.import_max_kw is None


BAD = [
    ("zero_import", {"import_max_kw": 0}, True, "grid_connection.import_max_kw", "greater than 0"),
    ("negative_export", {"export_max_kw": -3}, True, "grid_connection.export_max_kw", "greater than 0"),
    ("nan_import", {"import_max_kw": math.nan}, True, "grid_connection.import_max_kw", "finite"),
    ("infinite_import", {"import_max_kw": math.inf}, True, "grid_connection.import_max_kw", "finite"),
    ("text_import", {"import_max_kw": "ten"}, True, "grid_connection.import_max_kw", "number"),
    (
        "zero_margin",
        {"import_max_kw": 10, "margin_kw": 0},
        True,
        "grid_connection.margin_kw",
        "greater than 0",
    ),
    ("misspelt_key", {"import_max": 10}, True, "grid_connection.import_max", "import_max_kw"),
    ("unknown_meter", {"import_max_kw": 10, "meter": "nope"}, True, "grid_connection.meter", "no asset"),
    (
        "meter_not_a_meter",
        {"import_max_kw": 10, "meter": "pv1"},
        True,
        "grid_connection.meter",
        "not a meter",
    ),
    ("limit_without_meter", {"import_max_kw": 10}, False, "grid_connection", "net power"),
]


@pytest.mark.parametrize(("section", "meter", "key", "reason"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_grid_connection_names_file_key_and_reason(
    tmp_path: Path, section: dict[str, Any], meter: bool, key: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, _data(section, meter=meter))
    assert info.value.key == key, str(info.value)
    assert info.value.file == str(tmp_path / "site.yaml")
    assert reason in info.value.reason, info.value.reason


def test_the_site_cap_is_no_device_control(tmp_path: Path) -> None:
    data = _data(None)
    data["assets"][0]["controls"]["site_import_max_kw"] = {"point": "wmaxlim_pct"}
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, data)
    assert info.value.key == "assets[0].controls.site_import_max_kw"
    assert "site-level" in info.value.reason


def _cap(asset: str, value: float, cmd_id: str = "dso1") -> Command:
    return Command.model_validate(
        {
            "site": "b001",
            "ts": NOW,
            "cmd_id": cmd_id,
            "asset": asset,
            "kind": "site_import_max_kw",
            "value": value,
            "valid_from": NOW,
            "valid_until": NOW + timedelta(minutes=15),
        }
    )


@pytest.mark.parametrize("value", [0.0, -4.0])
def test_a_cap_that_is_not_positive_breaks_the_contract(value: float) -> None:
    with pytest.raises(ValueError, match="positive kW"):
        _cap("meter", value)
    with pytest.raises(ValueError, match="number"):
        Command.model_validate(_cap("meter", 5.0).model_dump() | {"value": "hold"})


def test_site_cap_decision_addresses_the_meter_and_writes_nothing(tmp_path: Path) -> None:
    cfg = _load(tmp_path, _data(None))
    kw: dict[str, Any] = {"config": cfg, "key": None, "now": NOW, "ramp": None, "now_mono": 0.0}
    ok = decide(_cap("meter", 6.0), guard=ReplayGuard(), **kw)
    assert (ok.status, ok.value, ok.write_value, ok.control) == ("applied", 6.0, None, None)
    wrong = decide(_cap("hp1", 6.0, "dso2"), guard=ReplayGuard(), **kw)
    assert wrong.status == "rejected" and "address it to the site's meter 'meter'" in (wrong.reason or "")
    no_meter = _load(tmp_path, _data(None, meter=False))
    refused = decide(_cap("hp1", 6.0, "dso3"), guard=ReplayGuard(), **(kw | {"config": no_meter}))
    assert refused.status == "rejected" and "it has none" in (refused.reason or "")
