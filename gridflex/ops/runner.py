"""Run one service coroutine until SIGTERM/SIGINT, then stop it within a bound.

Every long-running command (`gridflex edge`, `gridflex cloud`) needs the same shape:
start the service as a task, turn the first signal into a cancellation, and make sure the
process exits even when the service is slow to unwind. A single `task.cancel()` is not
enough on Python 3.11: it can be swallowed inside `asyncio.wait_for`, so the runner
cancels again until the task is done, and gives up (logging an error) after a bound.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["DEFAULT_STOP_BOUND_S", "cancel_until_done", "run_until_signal", "serve_until_signal"]

log = logging.getLogger(__name__)

DEFAULT_STOP_BOUND_S = 10.0
_RETRY_S = 0.2
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def cancel_until_done(task: asyncio.Task[Any], *, bound_s: float = DEFAULT_STOP_BOUND_S) -> bool:
    """Cancel `task` every 0.2 s until it is done or `bound_s` has passed; True if it finished."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound_s
    while not task.done():
        task.cancel()
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        await asyncio.wait({task}, timeout=min(_RETRY_S, remaining))
    if not task.done():
        log.error("task %s ignored cancellation for %.1f s; giving up", task.get_name(), bound_s)
        return False
    return True


async def serve_until_signal(
    service: Coroutine[Any, Any, None],
    *,
    name: str,
    stop: asyncio.Event | None = None,
    bound_s: float = DEFAULT_STOP_BOUND_S,
) -> None:
    """Await `service` until it returns, or until SIGTERM/SIGINT (or `stop`) ends it.

    An exception raised by the service propagates; a stop request is a clean return.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(service, name=name)
    for sig in _SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    stopper = asyncio.create_task(stop.wait(), name=f"{name}-stop")
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)
        stopper.cancel()
        if not task.done():
            await cancel_until_done(task, bound_s=bound_s)
    if task.done() and not task.cancelled():
        task.result()  # re-raise what the service raised
    log.info("%s stopped", name)


def run_until_signal(
    make_service: Callable[[], Coroutine[Any, Any, None]],
    *,
    name: str,
    bound_s: float = DEFAULT_STOP_BOUND_S,
) -> None:
    """`asyncio.run` of `serve_until_signal`: the body of a long-running command (exit 0 on a signal)."""

    async def main() -> None:
        await serve_until_signal(make_service(), name=name, bound_s=bound_s)

    asyncio.run(main())
