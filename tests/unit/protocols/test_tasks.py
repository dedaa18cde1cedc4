"""`cancel_all_until_done`: a child that swallowed its cancellation still ends; a clean-up is not cut short."""

from __future__ import annotations

import asyncio

from protocols.tasks import cancel_all_until_done


async def _swallows_one_cancel(log: list[str]) -> None:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        log.append("swallowed")  # as 3.11's wait_for does when its result lands with the cancel
    while True:
        await asyncio.sleep(0.01)


async def _cleans_up(log: list[str], cleanup_s: float) -> None:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        await asyncio.sleep(cleanup_s)  # e.g. flushing what was accepted
        log.append("flushed")
        raise


async def test_a_child_that_swallowed_its_cancellation_is_cancelled_until_it_ends() -> None:
    log: list[str] = []
    task = asyncio.create_task(_swallows_one_cancel(log))
    await asyncio.sleep(0)
    async with asyncio.timeout(30):
        await cancel_all_until_done([task], grace_s=0.05)
    assert task.cancelled() and log == ["swallowed"]


async def test_the_grace_lets_a_clean_up_finish_before_cancelling_again() -> None:
    log: list[str] = []
    tasks = [asyncio.create_task(_cleans_up(log, 0.1)) for _ in range(3)]
    await asyncio.sleep(0)
    await cancel_all_until_done(tasks, grace_s=10)
    assert all(t.cancelled() for t in tasks) and log == ["flushed"] * 3


async def test_without_grace_a_long_clean_up_is_cut_short() -> None:
    """The reason for the grace: a second cancel lands inside the clean-up."""
    log: list[str] = []
    task = asyncio.create_task(_cleans_up(log, 5.0))
    await asyncio.sleep(0)
    await cancel_all_until_done([task], grace_s=0.01)
    assert task.cancelled() and log == []
