"""A site YAML's `template:` devices expanded into the points the edge agent reads.

Pure: no I/O beyond reading template files.

A device entry may say `template: <name>` plus `assets:` (template role → asset id; default
the standard ids of `protocols.assets`), `address_offset:` and `overrides:` (per point:
limits, deadband, intervals, priority, `enabled: false`). Expansion appends the template's
points to the named assets, in device order, and removes those keys, so the result is the
hand-written form and the agent's own validation and rules apply to it unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from device_templates.loader import dotted_key, load_catalog
from device_templates.schema import DeviceTemplate, TemplatePoint
from protocols.assets import STANDARD_ASSET_ID, Role
from protocols.errors import ConfigError

__all__ = ["TEMPLATE_KEYS", "PointOverride", "expand_site", "template_points"]

#: Keys a `template:` device may carry besides its driver's own (removed by the expansion).
TEMPLATE_KEYS = ("template", "assets", "address_offset", "overrides")
_DEFAULT_PRIORITY = 8  # BACnet: manual operator priority, below life safety


class PointOverride(BaseModel):
    """What a site may change of a template point: limits, deadband, intervals, priority, presence."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    min: float | None = None
    max: float | None = None
    deadband: float | None = Field(default=None, ge=0)
    interval_s: float | None = Field(default=None, gt=0)
    max_age_s: float | None = Field(default=None, gt=0)
    priority: int | None = Field(default=None, ge=1, le=16)
    enabled: bool = True


def _point(
    t: DeviceTemplate, tp: TemplatePoint, device_id: str, offset: int, ov: PointOverride
) -> dict[str, Any]:
    """One point in the site YAML's hand-written form (keys as docs/site-config.md has them)."""
    p: dict[str, Any] = {"name": tp.name, "device": device_id}
    if tp.register_name is not None:
        r = t.register(tp.register_name)
        p["table"] = "holding"
        p["address"] = r.address + offset
        p["type"] = "uint32" if r.type == "acc32" else r.type
        if r.sf_address is not None:
            p["scale"] = r.scale * tp.scale  # the agent reads 10^sf from the SF register
            p["sf_address"] = r.sf_address + offset
        else:
            p["scale"] = r.scale * 10.0**r.sf * tp.scale
        if tp.sign != 1.0:
            p["sign"] = tp.sign
    else:
        p["object"] = tp.object
    p["unit"] = tp.unit
    deadband = ov.deadband if ov.deadband is not None else tp.deadband
    if deadband is not None:
        p["deadband"] = deadband
    if ov.interval_s is not None:
        p["interval_s"] = ov.interval_s
    if ov.max_age_s is not None:
        p["max_age_s"] = ov.max_age_s
    if tp.writable:
        p["writable"] = True
        if tp.object is not None:
            p["priority"] = ov.priority or tp.priority or _DEFAULT_PRIORITY
        p["min"] = ov.min if ov.min is not None else tp.min
        p["max"] = ov.max if ov.max is not None else tp.max
    elif ov.min is not None or ov.max is not None:
        p["min"], p["max"] = ov.min, ov.max
    return p


def template_points(
    t: DeviceTemplate,
    *,
    device_id: str,
    address_offset: int = 0,
    overrides: Mapping[str, PointOverride] | None = None,
) -> list[tuple[Role, dict[str, Any]]]:
    """The template's points for device `device_id`, each with the role of the asset it belongs to."""
    overrides = overrides or {}
    return [
        (tp.role, _point(t, tp, device_id, address_offset, overrides.get(tp.name, PointOverride())))
        for tp in t.points
        if overrides.get(tp.name, PointOverride()).enabled
    ]


def _overrides(raw: Any, t: DeviceTemplate, key: str, file: str) -> dict[str, PointOverride]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(
            "overrides are a mapping: point name -> {min, max, deadband, ...}", file=file, key=key
        )
    names = [p.name for p in t.points]
    out: dict[str, PointOverride] = {}
    for name, body in raw.items():
        pk = f"{key}.{name}"
        if name not in names:
            raise ConfigError(
                f"no point {name!r} in template {t.name!r} (points: {', '.join(names)})", file=file, key=pk
            )
        if not isinstance(body, dict):
            raise ConfigError("a point override is a mapping, e.g. {max: 7.4}", file=file, key=pk)
        try:
            out[name] = PointOverride.model_validate(body)
        except ValidationError as exc:
            err = exc.errors(include_url=False, include_input=False)[0]
            where = f"{pk}.{dotted_key(err['loc'])}"
            if err["type"] == "extra_forbidden":
                allowed = ", ".join(PointOverride.model_fields)
                raise ConfigError(
                    f"unknown override key {err['loc'][-1]!r} (allowed: {allowed})", file=file, key=where
                ) from None
            raise ConfigError(err["msg"], file=file, key=where) from None
    return out


def _roles(raw: Any, key: str, file: str) -> dict[Role, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError("assets is a mapping: role -> asset id", file=file, key=key)
    out: dict[Role, str] = {}
    for role, asset_id in raw.items():
        if role not in {r.value for r in Role}:
            known = ", ".join(r.value for r in Role)
            raise ConfigError(f"unknown role {role!r} (roles: {known})", file=file, key=f"{key}.{role}")
        out[Role(role)] = str(asset_id)
    return out


def expand_site(raw: dict[str, Any], *, file: str, base: Path) -> dict[str, Any]:
    """A copy of the site document with `template_dirs` resolved and every `template:` device expanded.

    `base` is the folder relative `template_dirs` are resolved against (the YAML's own).
    """
    doc = copy.deepcopy(raw)
    dirs_raw = doc.pop("template_dirs", None) or []
    if not isinstance(dirs_raw, list) or not all(isinstance(d, str) for d in dirs_raw):
        raise ConfigError("template_dirs is a list of folder paths", file=file, key="template_dirs")
    devices = doc.get("devices")
    if not isinstance(devices, list) or not any(isinstance(d, dict) and "template" in d for d in devices):
        return doc
    dirs = [Path(d) if Path(d).is_absolute() else base / d for d in dirs_raw]
    catalog = load_catalog(dirs)
    assets = doc.get("assets") or []
    by_id = {a["id"]: a for a in assets if isinstance(a, dict) and "id" in a}
    for i, dev in enumerate(devices):
        if not isinstance(dev, dict) or "template" not in dev:
            continue
        _expand_device(dev, f"devices[{i}]", catalog=catalog, assets=assets, by_id=by_id, file=file)
    return doc


def _expand_device(
    dev: dict[str, Any],
    key: str,
    *,
    catalog: dict[str, DeviceTemplate],
    assets: list[Any],
    by_id: dict[Any, Any],
    file: str,
) -> None:
    """Expand one `template:` device entry in place, appending its points to the site's assets."""
    name = dev.pop("template")
    t = catalog.get(name) if isinstance(name, str) else None
    if t is None:
        known = ", ".join(sorted(catalog))
        raise ConfigError(f"unknown template {name!r} (known: {known})", file=file, key=f"{key}.template")
    driver = dev.setdefault("driver", t.driver)
    if driver != t.driver:
        raise ConfigError(
            f"template {t.name!r} is a {t.driver} device, not {driver!r}", file=file, key=f"{key}.driver"
        )
    roles = _roles(dev.pop("assets", None), f"{key}.assets", file)
    offset = dev.pop("address_offset", 0)
    if isinstance(offset, bool) or not isinstance(offset, int) or not -65535 <= offset <= 65535:
        raise ConfigError(
            f"address_offset is a whole number of registers, got {offset!r}",
            file=file,
            key=f"{key}.address_offset",
        )
    if offset and t.driver != "modbus":
        raise ConfigError("address_offset is for Modbus devices", file=file, key=f"{key}.address_offset")
    overrides = _overrides(dev.pop("overrides", None), t, f"{key}.overrides", file)
    device_id = str(dev.get("id", ""))
    for role, point in template_points(t, device_id=device_id, address_offset=offset, overrides=overrides):
        asset_id = roles.get(role, STANDARD_ASSET_ID[role])
        asset = by_id.get(asset_id)
        if asset is None:
            if role in roles:
                raise ConfigError(
                    f"no asset {asset_id!r} in `assets`", file=file, key=f"{key}.assets.{role.value}"
                )
            continue  # the site has no asset of this role: the template's points for it are not used
        points = asset.setdefault("points", [])
        if points is None:
            points = asset["points"] = []
        if not isinstance(points, list):
            raise ConfigError("points is a list", file=file, key=f"assets[{assets.index(asset)}].points")
        points.append(point)
