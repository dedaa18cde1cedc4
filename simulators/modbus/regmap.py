"""Declarative Modbus register maps over live physics, with validated writes (pure, no sockets).

A map is a list of `Field`s: each names a register range, its type, scale (and SunSpec
scale-factor register), unit and access, and how to read it from (and write it to) the
physics. `refresh()` encodes the physics into the register image; `write()` decodes a
client write, checks access and range for every touched field, and applies all or
nothing. Errors are Modbus exception codes, never Python exceptions leaking out.
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Access", "ExcCode", "Field", "RegType", "RegisterMap", "string_regs"]

RegType = Literal["uint16", "int16", "uint32", "int32", "acc32", "sunssf", "string"]
Access = Literal["R", "RW"]


class ExcCode(enum.IntEnum):
    """Modbus exception codes the simulators answer with."""

    ILLEGAL_FUNCTION = 0x01
    ILLEGAL_ADDRESS = 0x02
    ILLEGAL_VALUE = 0x03
    DEVICE_FAILURE = 0x04
    DEVICE_BUSY = 0x06
    GATEWAY_PATH_UNAVAILABLE = 0x0A


_RANGE: dict[str, tuple[int, int]] = {
    "uint16": (0, 0xFFFF),
    "int16": (-0x8000, 0x7FFF),
    "sunssf": (-10, 10),
    "uint32": (0, 0xFFFF_FFFF),
    "acc32": (0, 0xFFFF_FFFF),
    "int32": (-0x8000_0000, 0x7FFF_FFFF),
}


@dataclass(frozen=True)
class Field:
    """One point of a map. engineering = raw × scale × 10^sf (sf read from `sf_address`)."""

    name: str
    address: int
    type: RegType
    unit: str = ""
    scale: float = 1.0
    sf: int = 0  # the scale factor this map publishes at `sf_address` (SunSpec *_SF)
    sf_address: int | None = None
    access: Access = "R"
    min: float | None = None  # engineering limits of a write
    max: float | None = None
    size: int = 0  # registers, for strings
    doc: str = ""
    get: Callable[[], float | str] | None = field(default=None, compare=False, repr=False)
    set: Callable[[float], None] | None = field(default=None, compare=False, repr=False)

    @property
    def count(self) -> int:
        """How many 16-bit registers the field spans: `size` for a string, 2 for 32-bit types, else 1."""
        if self.type == "string":
            return self.size
        return 2 if self.type in ("uint32", "int32", "acc32") else 1

    @property
    def factor(self) -> float:
        """Register value x factor = engineering value: `scale` times the SunSpec scale factor 10^`sf`."""
        return self.scale * 10.0**self.sf

    def encode(self, value: float | str) -> list[int]:
        """Engineering value → registers (big-endian words), saturated to the type's range."""
        if self.type == "string":
            return string_regs(str(value), self.size)
        if self.type == "sunssf":
            raw = int(value)
        else:
            v = float(value)
            raw = round(v / self.factor) if math.isfinite(v) else 0
        lo, hi = _RANGE[self.type]
        raw = min(max(raw, lo), hi)
        if self.count == 1:
            return [raw & 0xFFFF]
        u = raw & 0xFFFF_FFFF
        return [u >> 16, u & 0xFFFF]

    def decode(self, regs: Sequence[int]) -> float:
        """Registers → engineering value."""
        if self.count == 1:
            raw = regs[0]
            if self.type in ("int16", "sunssf") and raw >= 0x8000:
                raw -= 0x10000
        else:
            raw = (regs[0] << 16) | regs[1]
            if self.type == "int32" and raw >= 0x8000_0000:
                raw -= 0x1_0000_0000
        return raw * (1.0 if self.type == "sunssf" else self.factor)


def string_regs(text: str, size: int) -> list[int]:
    """ASCII string, NUL-padded, two characters per register (SunSpec `string`)."""
    raw = text.encode("ascii", "replace")[: 2 * size].ljust(2 * size, b"\0")
    return list(struct.unpack(f">{size}H", raw))


class RegisterMap:
    """A register image [base, base + size) with fields refreshed from physics and validated writes."""

    def __init__(self, fields: Sequence[Field], *, static: dict[int, int] | None = None) -> None:
        sfs = [f.sf_address for f in fields if f.sf_address is not None]
        addrs = [f.address for f in fields] + list((static or {}).keys()) + sfs
        ends = [f.address + f.count for f in fields] + [a + 1 for a in [*(static or {}), *sfs]]
        self.base = min(addrs)
        self.size = max(ends) - self.base
        self.image = [0] * self.size
        self.fields = list(fields)
        self.by_name = {f.name: f for f in fields}
        self._writable: dict[int, Field] = {}
        taken: set[int] = set()
        for a, v in (static or {}).items():
            self.image[a - self.base] = v & 0xFFFF
            taken.add(a)
        for f in fields:
            for a in range(f.address, f.address + f.count):
                if a in taken:
                    raise ValueError(f"register {a} used twice ({f.name})")
                taken.add(a)
            if f.access == "RW":
                self._writable[f.address] = f
            if f.sf_address is not None:
                self.image[f.sf_address - self.base] = f.sf & 0xFFFF
        self._live = [f for f in fields if f.get is not None]

    def refresh(self, *, garbage: bool = False) -> None:
        """Encode every live field from the physics (`garbage`: out-of-range values instead)."""
        img, base = self.image, self.base
        for f in self._live:
            if garbage and f.access == "R" and f.type not in ("string", "sunssf"):
                regs = [0x7FFF] if f.count == 1 else [0x7FFF, 0xFFFF]
            else:
                assert f.get is not None
                regs = f.encode(f.get())
            i = f.address - base
            img[i : i + len(regs)] = regs

    def read(self, address: int, count: int) -> list[int] | ExcCode:
        """The `count` registers from `address`, or `ILLEGAL_ADDRESS` if any lies outside the map."""
        if count < 1 or address < self.base or address + count > self.base + self.size:
            return ExcCode.ILLEGAL_ADDRESS
        i = address - self.base
        return self.image[i : i + count]

    def write(self, address: int, values: Sequence[int]) -> ExcCode | None:
        """Validate a write of `values` at `address`; apply it only if every field accepts it."""
        end = address + len(values)
        pending: list[tuple[Field, float]] = []
        a = address
        while a < end:
            f = self._writable.get(a)
            if f is None:
                return ExcCode.ILLEGAL_ADDRESS  # read-only, unmapped or mid-field
            if a + f.count > end:
                return ExcCode.ILLEGAL_VALUE  # half a 32-bit value
            v = f.decode(values[a - address : a - address + f.count])
            if (f.min is not None and v < f.min - 1e-9) or (f.max is not None and v > f.max + 1e-9):
                return ExcCode.ILLEGAL_VALUE
            pending.append((f, v))
            a += f.count
        for f, v in pending:
            i = f.address - self.base
            self.image[i : i + f.count] = f.encode(v)
            if f.set is not None:
                f.set(v)
        return None
