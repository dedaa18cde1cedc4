"""The rules of docs/site-config.md that span several keys ("Rules the agent enforces").

Pydantic checks each key on its own; these checks need the whole site (a point's
device, a control's point, the §14a floor of a safe state), and each names the dotted
key that is wrong.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocols.errors import ConfigError

if TYPE_CHECKING:
    from edge_agent.config import BacnetDevice, ModbusDevice, PointConfig, SiteConfig

__all__ = ["check_rules"]


def _writable(names: dict[str, PointConfig], asset_id: str, name: str, key: str, file: str) -> PointConfig:
    pt = names.get(name)
    if pt is None:
        raise ConfigError(f"no point {name!r} in asset {asset_id!r}", file=file, key=key)
    if not pt.writable:
        raise ConfigError(f"point {name!r} is not `writable: true`", file=file, key=key)
    return pt


def check_rules(cfg: SiteConfig, file: str) -> None:
    """The rules of docs/site-config.md that span several keys."""

    def fail(reason: str, key: str) -> None:
        raise ConfigError(reason, file=file, key=key)

    tls = cfg.broker.tls
    if tls is not None and (tls.cert_file is not None or tls.key_file is not None):
        # Refuse rather than connect without the client certificate the operator asked for.
        fail(
            "client certificates are not supported yet (protocols.mqtt has no cert/key)",
            "broker.tls.cert_file",
        )
    devices: dict[str, ModbusDevice | BacnetDevice] = {}
    for i, dev in enumerate(cfg.devices):
        if dev.id in devices:
            fail(f"duplicate device id {dev.id!r}", f"devices[{i}].id")
        devices[dev.id] = dev
    asset_ids: set[str] = set()
    for a, asset in enumerate(cfg.assets):
        where = f"assets[{a}]"
        if asset.id in asset_ids:
            fail(f"duplicate asset id {asset.id!r}", f"{where}.id")
        asset_ids.add(asset.id)
        names: dict[str, PointConfig] = {}
        for p, point in enumerate(asset.points):
            pk = f"{where}.points[{p}]"
            if point.name in names:
                fail(f"duplicate point name {point.name!r} in asset {asset.id!r}", f"{pk}.name")
            names[point.name] = point
            found = devices.get(point.device)
            if found is None:
                fail(f"unknown device {point.device!r} (devices: {sorted(devices)})", f"{pk}.device")
            elif found.driver == "modbus":
                for field in ("table", "address", "type"):
                    if getattr(point, field) is None:
                        fail(f"a Modbus point needs `{field}`", f"{pk}.{field}")
                if point.object is not None:
                    fail("`object` is for BACnet points; this device is Modbus", f"{pk}.object")
                if point.table in ("coil", "discrete") and point.type != "bool":
                    fail(f"a {point.table} point has type bool", f"{pk}.type")
                if point.table in ("holding", "input") and point.type == "bool":
                    fail("type bool lives in a coil or discrete table", f"{pk}.type")
                if point.writable and point.table in ("input", "discrete"):
                    fail(f"a {point.table} point cannot be writable", f"{pk}.writable")
            else:
                if point.object is None:
                    fail("a BACnet point needs `object` (type:instance)", f"{pk}.object")
                if point.table is not None or point.address is not None:
                    fail("`table`/`address` are for Modbus points; this device is BACnet", f"{pk}.table")

        for kind, control in asset.controls.items():
            ck = f"{where}.controls.{kind}"
            _writable(names, asset.id, control.point, f"{ck}.point", file)
            if control.read_back is not None and control.read_back not in names:
                fail(f"no point {control.read_back!r} in asset {asset.id!r}", f"{ck}.read_back")
            if control.enable is not None:
                _writable(names, asset.id, control.enable.point, f"{ck}.enable.point", file)
        floor_kw = asset.guaranteed_min_kw
        limit_ctl = asset.controls.get("p_limit_kw")
        for s, step in enumerate(asset.safe_state):
            sk = f"{where}.safe_state[{s}]"
            pt = _writable(names, asset.id, step.point, f"{sk}.point", file)
            if step.relinquish and devices[pt.device].driver != "bacnet":
                fail("relinquish is a BACnet operation; write a value to a Modbus point", f"{sk}.relinquish")
            if (
                step.write is not None
                and floor_kw is not None
                and limit_ctl is not None
                and step.point == limit_ctl.point
                and (step.write - limit_ctl.offset) / limit_ctl.factor < floor_kw - 1e-9
            ):
                fail(
                    f"safe state limits {asset.id!r} below its guaranteed minimum of {floor_kw} kW",
                    f"{sk}.write",
                )
