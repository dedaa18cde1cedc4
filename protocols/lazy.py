"""Lazy public faces: a package names its exports once and loads each module on first use.

`gridflex --help` must not pay for pandapower, pyomo, numpy or pymodbus, yet the faces
(`cloud_controller`, `cloud_controller.study`, `edge_agent`) should read like ordinary
packages with an `__all__`. PEP 562's module `__getattr__` does that; this is its one
implementation, so every face behaves the same (and errors name the face).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, where: Mapping[str, str], exported: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The `__getattr__` and `__dir__` of a face whose `exported` names live in `where[name]`.

    Raises ValueError at import time if a name is exported but has no home, so a face
    cannot promise what it cannot load.
    """
    homeless = sorted(set(exported) - set(where))
    if homeless:
        raise ValueError(f"{package}: exported but not mapped to a module: {', '.join(homeless)}")

    def __getattr__(name: str) -> Any:
        if name in where:
            return getattr(importlib.import_module(where[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(exported)

    return __getattr__, __dir__
