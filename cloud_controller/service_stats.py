"""The controller's counters: what it planned, sent, skipped and failed (the API, the metrics and the demo read them).

Why a module of its own: the loops (service_loops.py) and the controller both count, and
readers import the type without the controller.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["ControllerStats"]


@dataclass
class ControllerStats:
    """Counters the API and the demo read (ingest figures live in `ingest.stats`)."""

    dispatch_count: int = 0
    dispatch_errors: int = 0
    last_plan_at: datetime | None = None
    last_solve_ms: float = 0.0
    watermarks_published: int = 0
    commands_publish_failed: int = 0
    guard_steps: int = 0
    guard_commands: int = 0
    guard_dr_overrides: int = (
        0  # guard steps that moved a DR-reserved battery off its setpoint (a limit over)
    )
    commands_without_lease: int = 0  # not sent: the dispatch lease was not held (or had expired)
    periods_skipped: int = 0  # periods not planned: already dispatched (by a predecessor) or lease gone
