"""Opening the agent's two SQLite stores at start: the telemetry queue and the replay memory.

Split out of `edge_agent.agent` because the rule for a store that cannot open is its own:
not corruption (a corrupt file is moved aside by the store itself) but no store at all,
so the equipment is put into its safe state before the error propagates and the agent
exits; a restart loop then cannot strand it in the last commanded state.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable

from edge_agent.config import SiteConfig
from edge_agent.health import AgentStats
from edge_agent.replay import PersistentReplayGuard, replay_path
from edge_agent.telemetry import EventSink, TelemetryPipe
from protocols.clock import Clock

__all__ = ["open_queue", "open_replay_memory"]

log = logging.getLogger(__name__)


async def open_queue(
    config: SiteConfig,
    clock: Clock,
    stats: AgentStats,
    events: EventSink,
    safe_state_before_exit: Callable[[], Awaitable[None]],
) -> TelemetryPipe:
    """The telemetry queue; if it cannot open: `safe_state_before_exit()`, state `stopped`, then raise."""
    cfg = config
    try:
        return TelemetryPipe(cfg, clock, stats, events)
    except (sqlite3.Error, OSError) as exc:
        # No queue at all (not corruption: that is handled by moving the file aside).
        # Leave the equipment safe before exiting, so a restart loop cannot strand it.
        log.critical("cannot open the queue %s: %s; safe state, then exit", cfg.buffer.path, exc)
        await safe_state_before_exit()
        stats.state = "stopped"
        raise


async def open_replay_memory(
    config: SiteConfig,
    clock: Clock,
    stats: AgentStats,
    pipe: TelemetryPipe,
    safe_state_before_exit: Callable[[], Awaitable[None]],
) -> PersistentReplayGuard:
    """The replay memory next to the queue; if it cannot open: close `pipe`, safe state, then raise."""
    try:
        return PersistentReplayGuard(replay_path(config.buffer.path), now=clock.now())
    except (sqlite3.Error, OSError) as exc:  # same rule: no replay memory, no commands, safe state
        log.critical("cannot open the replay memory: %s; safe state, then exit", exc)
        pipe.close()
        await safe_state_before_exit()
        stats.state = "stopped"
        raise
