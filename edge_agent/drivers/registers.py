"""Pure Modbus register arithmetic: decode/encode typed values, scaling, and read coalescing.

Kept free of I/O so every type/order/scale combination is tested without a socket.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from edge_agent.config import PointConfig

__all__ = [
    "MAX_BITS_PER_READ",
    "MAX_REGISTERS_PER_READ",
    "ReadBlock",
    "decode",
    "encode",
    "engineering_to_raw",
    "plan_reads",
    "raw_to_engineering",
]

MAX_REGISTERS_PER_READ: Final = 125  # Modbus spec limit for function codes 3/4
MAX_BITS_PER_READ: Final = 2000

_FORMATS: Final = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f"}
Table = Literal["holding", "input", "coil", "discrete"]


def _to_bytes(registers: Sequence[int], word_order: str, byte_order: str) -> bytes:
    words = list(registers) if word_order == "big" else list(reversed(registers))
    out = bytearray()
    for word in words:
        pair = int(word & 0xFFFF).to_bytes(2, "big")
        out += pair if byte_order == "big" else pair[::-1]
    return bytes(out)


def decode(registers: Sequence[int], type_: str, word_order: str = "big", byte_order: str = "big") -> float:
    """Registers (16-bit words as received) -> number."""
    fmt = _FORMATS[type_]
    return float(struct.unpack(">" + fmt, _to_bytes(registers, word_order, byte_order))[0])


def encode(value: float, type_: str, word_order: str = "big", byte_order: str = "big") -> list[int]:
    """Number -> registers; integers are rounded, and refused when out of range."""
    fmt = _FORMATS[type_]
    if fmt != "f":
        value = round(value)
    try:
        data = struct.pack(">" + fmt, value)
    except struct.error as exc:
        raise ValueError(f"{value} does not fit {type_}") from exc
    words = [
        int.from_bytes(data[i : i + 2] if byte_order == "big" else data[i : i + 2][::-1], "big")
        for i in range(0, len(data), 2)
    ]
    return words if word_order == "big" else list(reversed(words))


def raw_to_engineering(raw: float, point: PointConfig, sf: int = 0) -> float:
    """Engineering = sign * (raw * scale * 10**sf + offset) (docs/site-config.md)."""
    return point.sign * (raw * point.scale * 10.0**sf + point.offset)


def engineering_to_raw(value: float, point: PointConfig, sf: int = 0) -> float:
    """Inverse of `raw_to_engineering`."""
    raw = (value / point.sign - point.offset) / (point.scale * 10.0**sf)
    if not math.isfinite(raw):
        raise ValueError(f"{value} has no finite raw value")
    return raw


@dataclass
class ReadBlock:
    """One contiguous read of `count` registers/bits starting at `address`."""

    table: Table
    address: int
    count: int
    addresses: set[int] = field(default_factory=set)  # start addresses of values inside


def plan_reads(items: Iterable[tuple[Table, int, int]], *, max_gap: int = 8) -> list[ReadBlock]:
    """Coalesce (table, address, count) wants into few reads, bridging gaps up to `max_gap`."""
    blocks: list[ReadBlock] = []
    by_table: dict[Table, list[tuple[int, int]]] = {}
    for table, address, count in items:
        by_table.setdefault(table, []).append((address, count))
    for table, wants in sorted(by_table.items()):
        limit = MAX_BITS_PER_READ if table in ("coil", "discrete") else MAX_REGISTERS_PER_READ
        current: ReadBlock | None = None
        for address, count in sorted(set(wants)):
            end = address + count
            if (
                current is not None
                and address <= current.address + current.count + max_gap
                and max(end, current.address + current.count) - current.address <= limit
            ):
                current.count = max(end, current.address + current.count) - current.address
                current.addresses.add(address)
                continue
            current = ReadBlock(table, address, count, {address})
            blocks.append(current)
    return blocks


def sf_wants(points: Sequence[PointConfig]) -> list[tuple[Table, int, int]]:
    """Every register a set of points needs: values and their SunSpec scale factors."""
    out: list[tuple[Table, int, int]] = []
    for p in points:
        assert p.table is not None and p.address is not None
        out.append((p.table, p.address, p.register_count if p.table in ("holding", "input") else 1))
        if p.sf_address is not None:
            out.append((p.table, p.sf_address, 1))
    return out
