"""UFTP's ISP numbering ↔ GridFlex's UTC ISP starts, and kW ↔ UFTP's signed watts.

UFTP numbers the 15-min ISPs of a `Period` (a local day in the message's `TimeZone`) from
1; a day with a DST change has 92 or 100 of them, so the start of ISP n is the local
midnight as a UTC instant plus (n − 1) × 15 min, never a wall-clock time. Power is whole
watts with UFTP's sign: negative = less consumption, which is what a reduction (GridFlex's
positive `kw` of relief) is on the wire.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["ISP", "by_period", "expand", "isp_start", "kw_of_reduction", "reduction_w"]

ISP = timedelta(minutes=15)


def _midnight(period: date, tz: str) -> datetime:
    return datetime.combine(period, time(0), tzinfo=ZoneInfo(tz)).astimezone(UTC)


def isp_start(period: date, number: int, tz: str) -> datetime:
    """UTC start of ISP `number` (1-based) of the local day `period`; ValueError past the day's end."""
    start = _midnight(period, tz) + (number - 1) * ISP
    if number < 1 or start >= _midnight(period + timedelta(days=1), tz):
        raise ValueError(f"ISP {number} is not in {period.isoformat()} ({tz})")
    return start


def by_period(starts: Iterable[datetime], tz: str) -> dict[date, list[tuple[int, datetime]]]:
    """UTC ISP starts grouped by local day, each with its ISP number, in order."""
    out: dict[date, list[tuple[int, datetime]]] = {}
    zone = ZoneInfo(tz)
    for t in sorted(starts):
        day = t.astimezone(zone).date()
        number = int((t - _midnight(day, tz)) / ISP) + 1
        out.setdefault(day, []).append((number, t))
    return out


def reduction_w(kw: float) -> int:
    """GridFlex's kW of reduction as UFTP watts (negative: less consumption)."""
    return -round(kw * 1000.0)


def kw_of_reduction(power_w: int) -> float:
    """UFTP watts as kW of reduction (a positive power, more consumption, is no reduction: 0)."""
    return max(0.0, -power_w / 1000.0)


def expand(isps: Iterable[tuple[int, int, int]]) -> dict[int, int]:
    """(Start, Duration, W) elements as W per ISP number; ValueError when an ISP is given twice."""
    out: dict[int, int] = {}
    for start, duration, w in isps:
        for n in range(start, start + duration):
            if n in out:
                raise ValueError(f"ISP {n} is given twice")
            out[n] = w
    return out
