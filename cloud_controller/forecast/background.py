"""The latest background congestion forecast, and the one computation in flight.

Why a holder of its own: the service computes the forecast after every plan in a worker
thread (0.1-0.5 s of CPU, never on the event loop) while the API reads the latest result
from other threads. Plans can come faster than forecasts (an accelerated clock): a plan
that arrives while one is computed waits as the single `pending` one, so at most one
forecast runs and the newest plan is always the next forecast. No clock inside: the
caller says when (`computed_at`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cloud_controller.forecast.result import ProbabilisticForecast

__all__ = ["BackgroundForecast", "LatestForecast"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LatestForecast:
    """A finished forecast and what it forecasts: the plan's first interval and its period."""

    forecast: ProbabilisticForecast
    plan_at: datetime
    period_s: float
    computed_at: datetime


class BackgroundForecast:
    """Thread-safe: `run` in a worker thread, `latest` from anywhere."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.latest: LatestForecast | None = None
        self.pending: Any = None  # the newest plan waiting for the running forecast
        self.running = False
        self.runs = 0
        self.errors = 0
        self.last_error: str | None = None
        self._alerted: frozenset[str] = frozenset()

    def claim(self, plan: Any) -> bool:
        """True if the caller should compute for `plan` now; else it is kept as the pending one."""
        with self._lock:
            if self.running:
                self.pending = plan
                return False
            self.running = True
            return True

    def release(self) -> Any:
        """The computation ended: the pending plan to compute next (claimed for the caller), or None."""
        with self._lock:
            plan, self.pending = self.pending, None
            self.running = plan is not None
            return plan

    def abandon(self) -> None:
        """The caller stopped waiting (shutdown): nothing is running or pending any more for it."""
        with self._lock:
            self.running, self.pending = False, None

    def run(
        self,
        compute: Callable[[], ProbabilisticForecast],
        *,
        plan_at: datetime,
        period_s: float,
        now: Callable[[], datetime],
    ) -> LatestForecast | None:
        """Compute and keep the result; a failure is counted and logged, the last result stays."""
        try:
            forecast = compute()
        except Exception as exc:  # a forecast failing must not take the control loop down
            with self._lock:
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("background congestion forecast failed: %s", exc)
            return None
        latest = LatestForecast(forecast, plan_at, period_s, now())
        with self._lock:
            self.latest = latest
            self.runs += 1
            alerted = frozenset(a.element for a in forecast.alerts)
            changed, self._alerted = alerted != self._alerted, alerted
        if changed and alerted:
            log.warning(
                "congestion forecast: %d element(s) with P(exceed) >= %g in the horizon (%s)",
                len(alerted),
                forecast.options.alert_level,
                ", ".join(sorted(alerted)[:5]) + (" ..." if len(alerted) > 5 else ""),
            )
        elif changed:
            log.info("congestion forecast: no alerts")
        return latest
