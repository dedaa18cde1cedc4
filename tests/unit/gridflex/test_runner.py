"""The one signal runner of `gridflex edge` / `gridflex cloud`: a stop request ends the service, within a bound."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from gridflex.ops.runner import cancel_until_done, serve_until_signal


async def _ignores_first_cancel(cancels: list[float]) -> None:
    """A service that swallows one cancellation (as `asyncio.wait_for` can on Python 3.11)."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        cancels.append(time.monotonic())
    await asyncio.sleep(3600)  # the second cancel lands here


async def test_a_task_that_ignores_the_first_cancel_is_still_stopped_within_the_bound() -> None:
    cancels: list[float] = []
    task = asyncio.create_task(_ignores_first_cancel(cancels))
    await asyncio.sleep(0)
    t0 = time.monotonic()
    assert await cancel_until_done(task, bound_s=2.0)
    assert task.cancelled()
    assert len(cancels) == 1
    assert time.monotonic() - t0 < 1.0  # the second cancel comes one retry (0.2 s) later


async def test_a_task_that_ignores_every_cancel_is_given_up_after_the_bound() -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    t0 = time.monotonic()
    assert not await cancel_until_done(task, bound_s=0.5)
    assert 0.5 <= time.monotonic() - t0 < 1.0
    release.set()
    task.cancel()
    await asyncio.wait({task}, timeout=1.0)


async def test_sigterm_stops_the_service_cleanly() -> None:
    cancels: list[float] = []
    runner = asyncio.create_task(serve_until_signal(_ignores_first_cancel(cancels), name="svc", bound_s=2.0))
    await asyncio.sleep(0.05)
    t0 = time.monotonic()
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(runner, 2.0)  # returns: a stop request is not an error
    assert len(cancels) == 1 and time.monotonic() - t0 < 1.0


async def test_a_stop_event_stops_the_service_and_a_service_error_propagates() -> None:
    stop = asyncio.Event()
    runner = asyncio.create_task(serve_until_signal(asyncio.sleep(3600), name="svc", stop=stop))
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(runner, 2.0)

    async def broken() -> None:
        raise RuntimeError("device on fire")

    with pytest.raises(RuntimeError, match="device on fire"):
        await serve_until_signal(broken(), name="svc")
