"""A device template's registers as a live `RegisterMap` over the physics (and a generic device).

`register_map` turns each template register into a `Field` bound to the named physics
quantity (or a constant), and the SunSpec chain and constants into fixed registers. The
built-in maps are built this way, and so is a device from a user's own template file:
`template_server` serves it over Modbus TCP bound to a default device model of the
template's `physics:` (or to constants only).
"""

from __future__ import annotations

from collections.abc import Mapping

from device_templates import DeviceTemplate, Register
from protocols.errors import ConfigError
from simulators.modbus.regmap import Field, RegisterMap
from simulators.modbus.server import ModbusDeviceServer
from simulators.quantities import MODELS, Quantity, quantities_for

__all__ = ["register_map", "template_server"]


class _Cell:
    """A writable register without physics: keeps what a client writes (starts at `value`)."""

    def __init__(self, value: float) -> None:
        self.value = value

    def get(self) -> float:
        return self.value

    def set(self, v: float) -> None:
        self.value = v


def _bound(v: float | str | None, q: Mapping[str, Quantity], t: DeviceTemplate, key: str) -> float | None:
    if v is None or isinstance(v, float | int):
        return v
    return float(_quantity(q, v, t, key).get())


def _quantity(q: Mapping[str, Quantity], name: str, t: DeviceTemplate, key: str) -> Quantity:
    found = q.get(name)
    if found is None:
        known = ", ".join(sorted(q)) or "none: the template has no physics"
        raise ConfigError(f"no quantity {name!r} (known: {known})", file=f"template {t.name}", key=key)
    return found


def _field(r: Register, i: int, q: Mapping[str, Quantity], t: DeviceTemplate) -> Field:
    key = f"registers[{i}]"
    get, set_ = None, None
    if r.quantity is not None:
        bound = _quantity(q, r.quantity, t, f"{key}.quantity")
        get = bound.get
        set_ = bound.set if r.access == "RW" else None
    elif r.value is not None and r.access == "RW":
        cell = _Cell(float(r.value))
        get, set_ = cell.get, cell.set
    elif r.value is not None:
        value = r.value
        get = lambda: value  # noqa: E731 - a constant register
    return Field(
        r.name,
        r.address,
        r.type,
        r.unit,
        scale=r.scale,
        sf=r.sf,
        sf_address=r.sf_address,
        access=r.access,
        min=_bound(r.min, q, t, f"{key}.min"),
        max=_bound(r.max, q, t, f"{key}.max"),
        size=r.size,
        doc=r.doc,
        get=get,
        set=set_,
    )


def register_map(t: DeviceTemplate, quantities: Mapping[str, Quantity], *, unit_id: int = 1) -> RegisterMap:
    """The live register map of template `t` over `quantities` (see `simulators.quantities`)."""
    if t.driver != "modbus":
        raise ConfigError(f"template {t.name!r} is a {t.driver} device, not Modbus", key="driver")
    fields = [_field(r, i, quantities, t) for i, r in enumerate(t.registers)]
    return RegisterMap(fields, static=t.static_registers(unit_id=unit_id))


def template_server(
    t: DeviceTemplate, *, unit_id: int = 1, host: str = "127.0.0.1", port: int = 0, name: str | None = None
) -> ModbusDeviceServer:
    """A Modbus TCP device serving template `t`, over a default model of its `physics:` (if any)."""
    quantities: Mapping[str, Quantity] = {}
    if t.physics is not None:
        if t.physics not in MODELS:
            raise ConfigError(f"no physics {t.physics!r} (known: {', '.join(MODELS)})", key="physics")
        quantities = quantities_for(t.physics, MODELS[t.physics](), serial=name or t.name)
    return ModbusDeviceServer(
        name or t.name, register_map(t, quantities, unit_id=unit_id), unit_id=unit_id, host=host, port=port
    )
