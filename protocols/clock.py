"""Injected time: every component takes a `Clock`, so simulated days run in seconds.

`RealClock` is wall time. `SimClock` is simulated time that either runs at a fixed
speed factor against the host's monotonic clock (60x, 900x, ...) or only moves when
a test calls `advance()` / `step()` (manual mode). Tests never sleep on wall time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "RealClock", "SimClock"]


@runtime_checkable
class Clock(Protocol):
    """What components need of time: a UTC wall time, a monotonic time, and sleep."""

    def now(self) -> datetime:
        """Current time, UTC, timezone-aware."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (simulated seconds for `SimClock`)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep `seconds` of this clock's time."""
        ...


class RealClock:
    """Wall-clock time."""

    def now(self) -> datetime:
        """Current wall time, UTC, timezone-aware."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Host monotonic seconds (`time.monotonic`), never going backwards."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Sleep `seconds` of wall time; a negative duration does not sleep."""
        await asyncio.sleep(max(0.0, seconds))


class SimClock:
    """Simulated time: accelerated (``speed`` > 0) or manually stepped (``speed=None``).

    In accelerated mode simulated time is ``start + speed * (host elapsed)`` and
    ``sleep(s)`` sleeps ``s / speed`` host seconds. In manual mode time stands still
    until `advance` or `step` moves it, and sleepers wake when their deadline passes.
    """

    def __init__(self, start: datetime | None = None, *, speed: float | None = None) -> None:
        start = start or datetime(2024, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("SimClock start must be timezone-aware (UTC)")
        if speed is not None and speed <= 0:
            raise ValueError(f"SimClock speed must be > 0, got {speed}")
        self._start = start.astimezone(UTC)
        self._speed = speed
        self._host_t0 = time.monotonic()
        self._elapsed_s = 0.0  # manual mode only
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._counter = itertools.count()

    @property
    def speed(self) -> float | None:
        """Speed factor, or None in manual mode."""
        return self._speed

    @property
    def start(self) -> datetime:
        """The simulated time at which this clock started (UTC)."""
        return self._start

    def monotonic(self) -> float:
        """Simulated seconds since `start`: stepped in manual mode, `speed` x host elapsed otherwise."""
        if self._speed is None:
            return self._elapsed_s
        return (time.monotonic() - self._host_t0) * self._speed

    def now(self) -> datetime:
        """Simulated time now: `start` plus `monotonic()` seconds."""
        return self._start + timedelta(seconds=self.monotonic())

    async def sleep(self, seconds: float) -> None:
        """Sleep `seconds` of simulated time.

        Accelerated: `seconds / speed` host seconds. Manual: until `advance`/`step` passes the deadline.
        """
        seconds = max(0.0, seconds)
        if self._speed is not None:
            await asyncio.sleep(seconds / self._speed)
            return
        if seconds == 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._elapsed_s + seconds, next(self._counter), future))
        await future

    def advance(self, seconds: float) -> None:
        """Manual mode: move time forward and wake every sleeper whose deadline passed."""
        if self._speed is not None:
            raise RuntimeError("advance() is for a manual SimClock (speed=None)")
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self._elapsed_s += seconds
        while self._sleepers and self._sleepers[0][0] <= self._elapsed_s:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    async def step(self, seconds: float, *, tick_s: float | None = None) -> None:
        """Manual mode: advance `seconds`, waking sleepers deadline by deadline.

        Between wake-ups the event loop runs, so chains of sleeps (a poller that
        sleeps again after each read) behave as they would in real time.
        ``tick_s`` caps each jump, for code that waits on I/O rather than on the clock.
        """
        target = self._elapsed_s + seconds
        while True:
            await _drain_loop()
            next_deadline = self._sleepers[0][0] if self._sleepers else target
            jump_to = min(next_deadline, target)
            if tick_s is not None:
                jump_to = min(jump_to, self._elapsed_s + tick_s)
            self.advance(max(0.0, jump_to - self._elapsed_s))
            if self._elapsed_s >= target:
                await _drain_loop()
                return


async def _drain_loop(rounds: int = 5) -> None:
    """Let ready tasks run (a few loop iterations) before time moves on."""
    for _ in range(rounds):
        await asyncio.sleep(0)
