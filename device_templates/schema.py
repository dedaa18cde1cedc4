"""The schema of a device template: a device type's registers (or BACnet objects) and points, as data.

One template feeds both sides: the simulators build their register map (or BACnet
objects) from `registers`/`objects`, bound to a physics `quantity` each; the edge agent
expands `points` into its site YAML points. A point names its register, so its address,
type, scale and SunSpec scale-factor register come from one place and cannot drift.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocols.assets import Role

__all__ = [
    "SUNSPEC_BASE",
    "BacnetObject",
    "Constant",
    "DeviceTemplate",
    "Register",
    "SunspecModel",
    "TemplatePoint",
]

#: SunSpec: `SunS` at this PDU address, the model chain from the next register but one.
SUNSPEC_BASE = 40000
_SUNS = (0x5375, 0x6E53)

RegType = Literal["uint16", "int16", "uint32", "int32", "acc32", "sunssf", "string"]
Access = Literal["R", "RW"]
Address = Annotated[int, Field(ge=0, le=65535)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
PointName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
#: A write limit: a number, or the name of a physics quantity the simulator reads at build time.
Bound = float | str


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Register(_Model):
    """One Modbus field: engineering = raw × scale × 10^sf (sf published at `sf_address`)."""

    name: Name
    address: Address
    type: RegType
    unit: str = ""
    scale: float = 1.0
    sf: int = Field(default=0, ge=-10, le=10)
    sf_address: Address | None = None
    access: Access = "R"
    min: Bound | None = None
    max: Bound | None = None
    size: int = Field(default=0, ge=0, le=64)  # registers, for strings
    doc: str = ""
    #: The physics quantity the simulator serves here (and writes to, for RW).
    quantity: str | None = None
    #: A constant the simulator serves instead of a quantity (a writable one keeps what is written).
    value: float | str | None = None

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if self.type == "string" and self.size < 1:
            raise ValueError("a string register needs `size` (registers)")
        if self.quantity is not None and self.value is not None:
            raise ValueError("give `quantity` or `value`, not both")
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        return self

    @property
    def count(self) -> int:
        """How many 16-bit registers the value spans: `size` for a string, 2 for 32-bit types, else 1."""
        if self.type == "string":
            return self.size
        return 2 if self.type in ("uint32", "int32", "acc32") else 1


class Constant(_Model):
    """A fixed register (a SunSpec DERTyp, a Pad); `unit_id` serves the device's unit id."""

    address: Address
    value: int | Literal["unit_id"]


class SunspecModel(_Model):
    """One SunSpec model of the chain: its id and length in registers (the header the chain serves)."""

    id: int = Field(ge=1, le=65534)
    length: int = Field(ge=0, le=2000)


class BacnetObject(_Model):
    """One BACnet object of a device; `default` is the relinquish default of a commandable one."""

    object: str = Field(pattern=r"^(analogInput|analogValue|binaryInput|binaryValue):\d+$")
    name: Name
    units: str | None = None  # BACnet engineering units, e.g. degreesCelsius
    commandable: bool = False
    default: Bound | None = None
    quantity: str | None = None
    digits: int | None = Field(default=None, ge=0, le=9)  # the simulator rounds published values
    #: The object exists only where the building has an asset of this role (e.g. hp).
    requires: Role | None = None
    doc: str = ""


class TemplatePoint(_Model):
    """A GridFlex point over a register or object: point value = sign × register value × scale."""

    name: PointName
    role: Role  # which asset of the site gets the point
    #: Modbus templates: the register read (the YAML key is `register`).
    register_name: Name | None = Field(default=None, alias="register")
    object: str | None = None  # BACnet templates: an `objects[].object`
    unit: str = ""
    scale: float = 1.0
    sign: float = 1.0
    deadband: float | None = Field(default=None, ge=0)
    writable: bool = False
    min: float | None = None
    max: float | None = None
    priority: int | None = Field(default=None, ge=1, le=16)  # BACnet write priority

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.register_name is None) == (self.object is None):
            raise ValueError("a point names exactly one of `register` (Modbus) or `object` (BACnet)")
        if self.scale == 0 or self.sign == 0:
            raise ValueError("scale and sign must not be 0")
        return self


class DeviceTemplate(_Model):
    """A device type: what it serves (registers or objects) and the points GridFlex reads of it."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    driver: Literal["modbus", "bacnet"]
    description: str = ""
    #: The simulator device model whose quantities the registers name (pv, meter, battery, ev,
    #: hp, bms); None = constants only.
    physics: str | None = None
    sunspec: list[SunspecModel] = Field(default_factory=list)
    constants: list[Constant] = Field(default_factory=list)
    registers: list[Register] = Field(default_factory=list)
    objects: list[BacnetObject] = Field(default_factory=list)
    points: list[TemplatePoint] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.driver == "modbus" and self.objects:
            raise ValueError("a modbus template has `registers`, not `objects`")
        if self.driver == "bacnet" and (self.registers or self.sunspec or self.constants):
            raise ValueError("a bacnet template has `objects`, not registers")
        regs = {r.name: r for r in self.registers}
        if len(regs) != len(self.registers):
            raise ValueError("register names must be unique")
        objs = {o.object: o for o in self.objects}
        if len(objs) != len(self.objects):
            raise ValueError("object ids must be unique")
        seen: set[str] = set()
        for p in self.points:
            if p.name in seen:
                raise ValueError(f"duplicate point name {p.name!r}")
            seen.add(p.name)
            _check_point_source(p, regs, objs)
        return self

    def register(self, name: str) -> Register:
        """The register called `name`; `KeyError` if the template has none."""
        for r in self.registers:
            if r.name == name:
                return r
        raise KeyError(name)

    def static_registers(self, *, unit_id: int) -> dict[int, int]:
        """The fixed registers: the SunSpec chain (marker, model headers, end) and `constants`."""
        out: dict[int, int] = {}
        if self.sunspec:
            out[SUNSPEC_BASE], out[SUNSPEC_BASE + 1] = _SUNS
            nxt = SUNSPEC_BASE + 2
            for m in self.sunspec:
                out[nxt], out[nxt + 1] = m.id, m.length
                nxt += 2 + m.length
            out[nxt], out[nxt + 1] = 0xFFFF, 0
        for c in self.constants:
            out[c.address] = (unit_id if c.value == "unit_id" else c.value) & 0xFFFF
        return out


def _check_point_source(p: TemplatePoint, regs: dict[str, Register], objs: dict[str, BacnetObject]) -> None:
    """A point's register or object exists, can be a point, and is writable if the point is."""
    if p.register_name is not None:
        r = regs.get(p.register_name)
        if r is None:
            raise ValueError(f"point {p.name!r}: no register {p.register_name!r}")
        if r.type in ("string", "sunssf"):
            raise ValueError(f"point {p.name!r}: a {r.type} register is not a point")
        if p.writable and r.access != "RW":
            raise ValueError(f"point {p.name!r} is writable but register {r.name!r} is read-only")
    else:
        o = objs.get(p.object or "")
        if o is None:
            raise ValueError(f"point {p.name!r}: no object {p.object!r}")
        if p.writable and not o.commandable:
            raise ValueError(f"point {p.name!r} is writable but object {o.object!r} is not commandable")
