"""Stopping child tasks for sure: cancel again until each is done, bounded.

Why: on Python 3.11 `asyncio.wait_for` swallows a cancellation that arrives in the same
loop iteration as its result (CPython gh-86296; aiomqtt, pymodbus and uvicorn all use
`wait_for`). A TaskGroup cancels each child once, so one swallowed cancellation leaves
the group, and the process around it, waiting forever. The agent and the controller stop
their children through `cancel_until_done` before leaving their TaskGroup.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

__all__ = ["cancel_all_until_done", "cancel_until_done"]

log = logging.getLogger(__name__)


async def cancel_until_done(task: asyncio.Task[Any], attempts: int = 50, wait_s: float = 0.2) -> bool:
    """Cancel `task` until it is done, at most `attempts` times `wait_s`; False (logged) if it never ends."""
    for _ in range(attempts):
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=wait_s)
        if done:
            return True
    log.error("task %s ignores cancellation", task.get_name())
    return False


async def cancel_all_until_done(tasks: Iterable[asyncio.Task[Any]], grace_s: float = 0.2) -> None:
    """Cancel every task, allow `grace_s` for their clean-up, then insist on each one still running.

    A task still running after `grace_s` swallowed its cancellation: `cancel_until_done` it.

    `grace_s` is the longest clean-up a child is allowed (the controller's ingest writer flushes
    what it accepted for up to 10 s): cancelling again sooner would cut that clean-up short.
    """
    running = [t for t in tasks if not t.done()]
    for task in running:
        task.cancel()
    if not running:
        return
    _, pending = await asyncio.wait(running, timeout=grace_s)
    for task in pending:
        await cancel_until_done(task)
