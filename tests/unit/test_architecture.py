"""The dependency rules of ARCHITECTURE §2, enforced on the source (imports read with `ast`).

- `protocols` is the contract: it imports none of the other packages, and of third-party
  code only pydantic and aiomqtt (with paho, aiomqtt's engine).
- `edge_agent` and `cloud_controller` never import each other.
- `simulators` are equipment: they import neither the agent nor the controller, and the
  controller imports no simulators at all (they are reached over sockets only).
- `profiles` (pure generators) and `device_templates` (device descriptions as data) are
  leaves: they import `protocols` and third-party code only, and anyone may import them.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PACKAGES = (
    "protocols",
    "profiles",
    "device_templates",
    "edge_agent",
    "cloud_controller",
    "simulators",
    "gridflex",
)
PROJECT = {
    "protocols",
    "profiles",
    "device_templates",
    "edge_agent",
    "cloud_controller",
    "simulators",
    "gridflex",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


FORBIDDEN = {
    "protocols": {"profiles", "device_templates", "edge_agent", "cloud_controller", "simulators", "gridflex"},
    "edge_agent": {"cloud_controller", "simulators", "gridflex"},
    "cloud_controller": {"edge_agent", "simulators", "gridflex"},
    "simulators": {"edge_agent", "cloud_controller", "gridflex"},
}


@pytest.mark.parametrize("package", list(FORBIDDEN))
def test_package_imports_point_inward(package: str) -> None:
    violations = []
    for path in _files(package):
        rel = path.relative_to(ROOT)
        for name in _imports(path):
            top = name.split(".")[0]
            if top in FORBIDDEN[package]:
                violations.append(f"{rel}: imports {name}")
    assert not violations, "\n".join(violations)


@pytest.mark.parametrize("package", ["profiles", "device_templates"])
def test_leaf_packages_import_only_protocols_of_the_project(package: str) -> None:
    violations = [
        f"{path.relative_to(ROOT)}: imports {name}"
        for path in _files(package)
        for name in _imports(path)
        if name.split(".")[0] in PROJECT - {"protocols", package}
    ]
    assert not violations, "\n".join(violations)


def test_protocols_depends_on_pydantic_and_aiomqtt_only() -> None:
    allowed = {"pydantic", "aiomqtt", "paho", "protocols", "__future__", *sys.stdlib_module_names}
    violations = [
        f"{path.relative_to(ROOT)}: imports {name}"
        for path in _files("protocols")
        for name in _imports(path)
        if name.split(".")[0] not in allowed
    ]
    assert not violations, "\n".join(violations)


def test_every_package_exists() -> None:
    for package in PACKAGES:
        assert (ROOT / package / "__init__.py").is_file(), package


def test_device_templates_depend_on_pydantic_pyyaml_and_protocols_only() -> None:
    allowed = {"pydantic", "yaml", "protocols", "device_templates", "__future__", *sys.stdlib_module_names}
    violations = [
        f"{path.relative_to(ROOT)}: imports {name}"
        for path in _files("device_templates")
        for name in _imports(path)
        if name.split(".")[0] not in allowed
    ]
    assert not violations, "\n".join(violations)
