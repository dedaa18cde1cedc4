"""The dependency rules of ARCHITECTURE §2, enforced on the source (imports read with `ast`).

- `protocols` is the contract: it imports none of the other packages, and of third-party
  code only pydantic and aiomqtt (with paho, aiomqtt's engine).
- `edge_agent` and `cloud_controller` never import each other.
- `simulators` are equipment: they import neither the agent nor the controller, and the
  controller imports no simulators at all (they are reached over sockets only).
- `profiles` (pure generators), `device_templates` (device descriptions as data) and
  `flexmodels` (building flexibility models, shared by the agent and the controller) are
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
    "flexmodels",
    "edge_agent",
    "cloud_controller",
    "simulators",
    "gridflex",
)
PROJECT = {
    "protocols",
    "profiles",
    "device_templates",
    "flexmodels",
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
    "protocols": {
        "profiles",
        "device_templates",
        "flexmodels",
        "edge_agent",
        "cloud_controller",
        "simulators",
        "gridflex",
    },
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


@pytest.mark.parametrize("package", ["profiles", "device_templates", "flexmodels"])
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


def test_flexmodels_depend_on_numpy_and_protocols_only() -> None:
    allowed = {"numpy", "protocols", "flexmodels", "__future__", *sys.stdlib_module_names}
    violations = [
        f"{path.relative_to(ROOT)}: imports {name}"
        for path in _files("flexmodels")
        for name in _imports(path)
        if name.split(".")[0] not in allowed
    ]
    assert not violations, "\n".join(violations)


def test_device_templates_depend_on_pydantic_pyyaml_and_protocols_only() -> None:
    allowed = {"pydantic", "yaml", "protocols", "device_templates", "__future__", *sys.stdlib_module_names}
    violations = [
        f"{path.relative_to(ROOT)}: imports {name}"
        for path in _files("device_templates")
        for name in _imports(path)
        if name.split(".")[0] not in allowed
    ]
    assert not violations, "\n".join(violations)


# The composition root reaches the controller through its public faces only, so a module
# moved inside `cloud_controller` breaks no import outside it.
CONTROLLER_FACES = {
    "cloud_controller",
    "cloud_controller.dispatch",
    "cloud_controller.dr",
    "cloud_controller.grid",
    "cloud_controller.market",
    "cloud_controller.market.uftp",
    "cloud_controller.openadr.ven",
    "cloud_controller.study",
}


def test_gridflex_imports_the_controller_through_its_public_faces() -> None:
    violations = [
        f"{path.relative_to(ROOT)}: imports {name} (use one of {sorted(CONTROLLER_FACES)})"
        for path in _files("gridflex")
        for name in _imports(path)
        if name.split(".")[0] == "cloud_controller" and name not in CONTROLLER_FACES
    ]
    assert not violations, "\n".join(violations)


def test_every_controller_face_declares_its_names() -> None:
    for face in sorted(CONTROLLER_FACES):
        init = ROOT / face.replace(".", "/") / "__init__.py"
        tree = ast.parse(init.read_text(), filename=str(init))
        declared = [
            node
            for node in tree.body
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets)
        ]
        assert declared, f"{init.relative_to(ROOT)} has no __all__"


# Benchmarks are not product: their code lives in `gridflex/bench/`, and the only module
# that reaches it is the command line, which wires the `gridflex bench` commands to it.
BENCH = "gridflex.bench"
BENCH_DIR = ROOT / "gridflex" / "bench"
COMMAND_LINE_DIR = ROOT / "gridflex" / "cli"


def test_no_product_module_imports_a_bench_module() -> None:
    violations = []
    for package in PACKAGES:
        for path in _files(package):
            if path.is_relative_to(BENCH_DIR) or path.is_relative_to(COMMAND_LINE_DIR):
                continue
            violations += [
                f"{path.relative_to(ROOT)}: imports {name}"
                for name in _imports(path)
                if name == BENCH or name.startswith(BENCH + ".")
            ]
    assert not violations, "\n".join(violations)


def test_the_bench_rule_sees_a_bench_import(tmp_path: Path) -> None:
    """The rule above would catch a product module that imported the bench (it reads imports right)."""
    module = tmp_path / "m.py"
    module.write_text("from gridflex.bench.dispatch import run_dispatch_bench\nimport gridflex.bench\n")
    assert {BENCH + ".dispatch", BENCH} <= _imports(module)
