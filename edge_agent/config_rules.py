"""The rules of docs/site-config.md that span several keys ("Rules the agent enforces").

Pydantic checks each key on its own; these checks need the whole site (a point's
device, a control's point, the §14a floor of a safe state), and each names the dotted
key that is wrong.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from edge_agent.config_dr import DR_KINDS
from protocols.errors import ConfigError
from protocols.messages import SITE_COMMAND_KINDS

if TYPE_CHECKING:
    from edge_agent.config import AssetConfig, BacnetDevice, ModbusDevice, PointConfig, SiteConfig

__all__ = ["check_rules"]


def _writable(names: dict[str, PointConfig], asset_id: str, name: str, key: str, file: str) -> PointConfig:
    pt = names.get(name)
    if pt is None:
        raise ConfigError(f"no point {name!r} in asset {asset_id!r}", file=file, key=key)
    if not pt.writable:
        raise ConfigError(f"point {name!r} is not `writable: true`", file=file, key=key)
    return pt


def _check_point(point: PointConfig, dev: ModbusDevice | BacnetDevice, pk: str, file: str) -> None:
    """A point carries the fields of its device's driver, and only those."""
    if dev.driver == "modbus":
        for field in ("table", "address", "type"):
            if getattr(point, field) is None:
                raise ConfigError(f"a Modbus point needs `{field}`", file=file, key=f"{pk}.{field}")
        if point.object is not None:
            raise ConfigError(
                "`object` is for BACnet points; this device is Modbus", file=file, key=f"{pk}.object"
            )
        if point.table in ("coil", "discrete") and point.type != "bool":
            raise ConfigError(f"a {point.table} point has type bool", file=file, key=f"{pk}.type")
        if point.table in ("holding", "input") and point.type == "bool":
            raise ConfigError("type bool lives in a coil or discrete table", file=file, key=f"{pk}.type")
        if point.writable and point.table in ("input", "discrete"):
            raise ConfigError(f"a {point.table} point cannot be writable", file=file, key=f"{pk}.writable")
    else:
        if point.object is None:
            raise ConfigError("a BACnet point needs `object` (type:instance)", file=file, key=f"{pk}.object")
        if point.table is not None or point.address is not None:
            raise ConfigError(
                "`table`/`address` are for Modbus points; this device is BACnet", file=file, key=f"{pk}.table"
            )


def _check_points(
    asset: AssetConfig, where: str, devices: dict[str, ModbusDevice | BacnetDevice], file: str
) -> dict[str, PointConfig]:
    """An asset's points: unique names, known devices, driver fields; returns them by name."""
    names: dict[str, PointConfig] = {}
    for p, point in enumerate(asset.points):
        pk = f"{where}.points[{p}]"
        if point.name in names:
            raise ConfigError(
                f"duplicate point name {point.name!r} in asset {asset.id!r}", file=file, key=f"{pk}.name"
            )
        names[point.name] = point
        found = devices.get(point.device)
        if found is None:
            raise ConfigError(
                f"unknown device {point.device!r} (devices: {sorted(devices)})", file=file, key=f"{pk}.device"
            )
        _check_point(point, found, pk, file)
    return names


def _check_controls(asset: AssetConfig, where: str, names: dict[str, PointConfig], file: str) -> None:
    """Each control writes a writable point of the asset; read-back and enable points exist."""
    for kind, control in asset.controls.items():
        ck = f"{where}.controls.{kind}"
        if kind in SITE_COMMAND_KINDS:
            raise ConfigError(
                f"{kind!r} is a site-level command (the agent holds it), not a device control",
                file=file,
                key=ck,
            )
        _writable(names, asset.id, control.point, f"{ck}.point", file)
        if control.read_back is not None and control.read_back not in names:
            raise ConfigError(
                f"no point {control.read_back!r} in asset {asset.id!r}", file=file, key=f"{ck}.read_back"
            )
        if control.enable is not None:
            _writable(names, asset.id, control.enable.point, f"{ck}.enable.point", file)


def _check_dr_controls(
    asset: AssetConfig,
    where: str,
    names: dict[str, PointConfig],
    devices: dict[str, ModbusDevice | BacnetDevice],
    file: str,
) -> None:
    """A DR write (zone setpoint, fan speed) is held at a BACnet priority and relinquished: BACnet only."""
    for kind, control in asset.controls.items():
        if kind in DR_KINDS and devices[names[control.point].device].driver != "bacnet":
            raise ConfigError(
                f"{kind!r} is a DR write held at a BACnet priority and relinquished at its end; "
                f"point {control.point!r} is not on a BACnet device",
                file=file,
                key=f"{where}.controls.{kind}.point",
            )


def _check_safe_state(
    asset: AssetConfig,
    where: str,
    names: dict[str, PointConfig],
    devices: dict[str, ModbusDevice | BacnetDevice],
    file: str,
) -> None:
    """Safe-state steps write writable points, relinquish only on BACnet, never below the §14a floor."""
    floor_kw = asset.guaranteed_min_kw
    limit_ctl = asset.controls.get("p_limit_kw")
    for s, step in enumerate(asset.safe_state):
        sk = f"{where}.safe_state[{s}]"
        pt = _writable(names, asset.id, step.point, f"{sk}.point", file)
        if step.relinquish and devices[pt.device].driver != "bacnet":
            raise ConfigError(
                "relinquish is a BACnet operation; write a value to a Modbus point",
                file=file,
                key=f"{sk}.relinquish",
            )
        if (
            step.write is not None
            and floor_kw is not None
            and limit_ctl is not None
            and step.point == limit_ctl.point
            and (step.write - limit_ctl.offset) / limit_ctl.factor < floor_kw - 1e-9
        ):
            raise ConfigError(
                f"safe state limits {asset.id!r} below its guaranteed minimum of {floor_kw} kW",
                file=file,
                key=f"{sk}.write",
            )


def _check_tls(cfg: SiteConfig, file: str) -> None:
    """The TLS files exist and load (CA bundle; certificate with its key), so a bad one fails at start."""
    tls = cfg.broker.tls
    if tls is None:
        return
    for name in ("ca_file", "cert_file", "key_file"):
        path = getattr(tls, name)
        if path is not None and not path.is_file():
            raise ConfigError(f"no such file: {path}", file=file, key=f"broker.tls.{name}")
    try:
        ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"not a CA bundle: {exc}", file=file, key="broker.tls.ca_file") from None
    if tls.cert_file is not None and tls.key_file is not None:
        try:
            ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"certificate and key do not load as a pair: {exc}", file=file, key="broker.tls.cert_file"
            ) from None


def _check_grid_connection(cfg: SiteConfig, file: str) -> None:
    """A connection limit needs the site's net power: one meter asset with a `p_kw` point."""
    gc = cfg.grid_connection
    if gc.meter is not None:
        named = next((a for a in cfg.assets if a.id == gc.meter), None)
        if named is None:
            raise ConfigError(f"no asset {gc.meter!r}", file=file, key="grid_connection.meter")
        if named.kind != "meter":
            raise ConfigError(
                f"asset {gc.meter!r} is a {named.kind}, not a meter", file=file, key="grid_connection.meter"
            )
    elif sum(a.kind == "meter" for a in cfg.assets) > 1 and (gc.import_max_kw or gc.export_max_kw):
        raise ConfigError(
            "the site has several meter assets: name the one at the grid connection",
            file=file,
            key="grid_connection.meter",
        )
    if gc.import_max_kw is None and gc.export_max_kw is None:
        return
    meter = cfg.site_meter()
    if meter is None or not any(p.name == "p_kw" for p in meter.points):
        raise ConfigError(
            "a connection limit needs the site's net power: a meter asset with a `p_kw` point",
            file=file,
            key="grid_connection",
        )


def check_rules(cfg: SiteConfig, file: str) -> None:
    """The rules of docs/site-config.md that span several keys."""
    _check_tls(cfg, file)
    devices: dict[str, ModbusDevice | BacnetDevice] = {}
    for i, dev in enumerate(cfg.devices):
        if dev.id in devices:
            raise ConfigError(f"duplicate device id {dev.id!r}", file=file, key=f"devices[{i}].id")
        devices[dev.id] = dev
    asset_ids: set[str] = set()
    for a, asset in enumerate(cfg.assets):
        where = f"assets[{a}]"
        if asset.id in asset_ids:
            raise ConfigError(f"duplicate asset id {asset.id!r}", file=file, key=f"{where}.id")
        asset_ids.add(asset.id)
        names = _check_points(asset, where, devices, file)
        _check_controls(asset, where, names, file)
        _check_dr_controls(asset, where, names, devices, file)
        _check_safe_state(asset, where, names, devices, file)
    _check_grid_connection(cfg, file)
