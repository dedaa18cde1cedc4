"""One simulated building with a signing, fencing agent: the set-up of the tests that command it.

Shared by the DR activation and the market FSP dispatch tests (both prove a command's
fence by its `applied` ack, so the agent requires fences and verifies `key`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from edge_agent.config import SiteConfig, load_config
from protocols.clock import RealClock
from simulators.fleet import SiteSpec
from simulators.testbed import TestBed, TestBedConfig

__all__ = ["one_building", "signed_fenced_agent", "until"]


@contextlib.asynccontextmanager
async def one_building(spec: SiteSpec, port: int, tmp: Path) -> AsyncIterator[TestBed]:
    """The building of `spec` on real sockets, its physics stepping on the wall clock."""
    cfg = TestBedConfig(n_sites=1, start=datetime.now(UTC), broker_port=port, bacnet=False, specs=(spec,))
    async with TestBed(cfg, RealClock(), tmp / "bed") as bed:
        bed.step(1.0)
        physics = asyncio.create_task(bed.run())
        try:
            yield bed
        finally:
            physics.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await physics


def signed_fenced_agent(bed: TestBed, tmp: Path, key: bytes) -> SiteConfig:
    """The bed's site config with signing key `k1` = `key` and fences required."""
    path = bed.manifest.sites[0].config
    doc = yaml.safe_load(path.read_text())
    (tmp / "agent-k1.hex").write_text(key.hex(), encoding="utf-8")
    doc["signing"] = {"keys": {"k1": str(tmp / "agent-k1.hex")}}
    doc.setdefault("commands", {})["require_fence"] = True  # an applied ack proves the fence
    path.write_text(yaml.safe_dump(doc))
    return load_config(path)


async def until(pred: Callable[[], Any], timeout_s: float, what: str) -> None:
    """Poll `pred` until true; AssertionError naming `what` after `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s):
            while not pred():
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}") from None
