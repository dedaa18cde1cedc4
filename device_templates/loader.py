"""Template files: read and validate one, or a catalog of the built-ins plus the user's folders.

A template is `<name>.yaml` holding a `DeviceTemplate`; the built-ins ship in this
package's `builtin/` folder, a user adds a device type by putting a file in a folder the
site YAML names under `template_dirs:` (no code). Errors are `ConfigError`s naming the
template file, the key and the reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from device_templates.schema import DeviceTemplate
from protocols.errors import ConfigError

__all__ = ["BUILTIN_DIR", "builtin", "builtin_catalog", "dotted_key", "load_catalog", "load_template"]

BUILTIN_DIR = Path(__file__).parent / "builtin"


def dotted_key(loc: Iterable[int | str]) -> str:
    """A pydantic error location as the dotted key a user sees: `points[2].max`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("float", "str", "int", "literal['unit_id']"):
            continue  # the union member pydantic tried
        else:
            out += f".{part}" if out else str(part)
    return out


def load_template(path: Path) -> DeviceTemplate:
    """One template file; its `name` must be the file's stem so a lookup finds what it says."""
    file = str(path)
    try:
        raw: Any = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=file) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=file) from None
    if not isinstance(raw, dict):
        raise ConfigError("a template is a mapping", file=file)
    try:
        template = DeviceTemplate.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        raise ConfigError(err["msg"], file=file, key=dotted_key(err["loc"]) or None) from None
    if template.name != path.stem:
        raise ConfigError(
            f"name {template.name!r} differs from the file name {path.name!r}", file=file, key="name"
        )
    return template


def _folder(folder: Path) -> dict[str, DeviceTemplate]:
    if not folder.is_dir():
        raise ConfigError("template folder not found", file=str(folder))
    return {p.stem: load_template(p) for p in sorted(folder.glob("*.yaml"))}


@cache
def builtin_catalog() -> dict[str, DeviceTemplate]:
    """The templates shipped with GridFlex, by name (read once per process)."""
    return _folder(BUILTIN_DIR)


def builtin(name: str) -> DeviceTemplate:
    """A shipped template by name; a KeyError lists the known names."""
    catalog = builtin_catalog()
    if name not in catalog:
        raise KeyError(f"unknown template {name!r} (known: {', '.join(sorted(catalog))})")
    return catalog[name]


def load_catalog(dirs: Iterable[Path] = ()) -> dict[str, DeviceTemplate]:
    """Built-ins plus every `*.yaml` of `dirs`; a name defined twice is an error, not a silent shadow."""
    catalog = dict(builtin_catalog())
    origin = dict.fromkeys(catalog, str(BUILTIN_DIR))
    for folder in dirs:
        for name, template in _folder(folder).items():
            if name in catalog:
                raise ConfigError(
                    f"template {name!r} is already defined in {origin[name]}",
                    file=str(folder / f"{name}.yaml"),
                )
            catalog[name] = template
            origin[name] = str(folder)
    return catalog
