"""The one lazy-face helper: loads on first use, names the face in errors, refuses homeless names."""

from __future__ import annotations

import subprocess
import sys

import pytest

from protocols.lazy import lazy_exports


def test_a_name_is_loaded_from_its_module_on_first_use() -> None:
    getattr_, dir_ = lazy_exports("face", {"sqrt": "math", "dumps": "json"}, ["dumps", "sqrt"])
    assert getattr_("sqrt")(9.0) == 3.0
    assert dir_() == ["dumps", "sqrt"]


def test_an_unknown_name_raises_attribute_error_naming_the_face() -> None:
    getattr_, _ = lazy_exports("face", {"sqrt": "math"}, ["sqrt"])
    with pytest.raises(AttributeError, match="module 'face' has no attribute 'cos'"):
        getattr_("cos")


def test_an_exported_name_without_a_module_is_refused_at_import() -> None:
    with pytest.raises(ValueError, match="face: exported but not mapped to a module: cos"):
        lazy_exports("face", {"sqrt": "math"}, ["cos", "sqrt"])


def test_the_faces_stay_lazy() -> None:
    """Importing the three faces loads none of the heavy libraries behind them."""
    code = (
        "import sys, cloud_controller, cloud_controller.study, edge_agent\n"
        "heavy = {'pandapower', 'pyomo', 'numpy', 'pymodbus', 'aiomqtt'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
        "assert cloud_controller.load_registry.__module__ == 'cloud_controller.registry'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
