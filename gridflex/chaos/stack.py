"""The telemetry stack the kill scenarios share: Mosquitto, `gridflex sim`, an ingest-only `gridflex cloud`.

Each scenario runs its own `gridflex edge` (a site of its own, so one scenario's kills do
not blur another's figures) with the poll log on, and judges by comparing the poll log
with the controller's store (`compare.check_samples`).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import yaml

from gridflex.chaos.compare import Polled, SampleCheck, check_samples, parse_poll_log
from gridflex.chaos.world import Child, edge_config, read_store, start_cloud, start_edge, start_sim
from gridflex.ops.broker import MosquittoBroker
from protocols.testbed import Manifest

__all__ = ["TelemetryStack"]


class TelemetryStack:
    """Broker, buildings and the controller's ingest, each its own process; agents on demand."""

    def __init__(self, workdir: Path, *, sites: int = 3) -> None:
        self.workdir = workdir
        self.n_sites = sites
        self.broker = MosquittoBroker(workdir=workdir / "mosquitto")
        self.sim: Child | None = None
        self.cloud: Child | None = None
        self.manifest: Manifest | None = None
        self.store_path = workdir / "cloud" / "store.sqlite"
        self.agents: list[Child] = []

    async def __aenter__(self) -> TelemetryStack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self.broker.start)
        self.sim, self.manifest = await start_sim(
            self.workdir, sites=self.n_sites, broker_port=self.broker.port
        )
        cfg = self.workdir / "cloud" / "cloud.yaml"
        cfg.parent.mkdir(parents=True, exist_ok=True)
        cfg.write_text(
            yaml.safe_dump(
                {
                    "broker": {"port": self.broker.port, "client_id": "chaos-cloud"},
                    "registry": str(self.workdir / "sim" / "manifest.json"),
                    "store": {"path": str(self.store_path)},
                    "control": {"dispatch": False},
                    "api": {"enabled": False},
                }
            )
        )
        self.cloud = await start_cloud(cfg, self.workdir / "cloud.log")
        return self

    async def __aexit__(self, *exc: object) -> None:
        for child in [*self.agents, self.cloud, self.sim]:
            if child is not None:
                await asyncio.to_thread(child.stop)
        await asyncio.to_thread(self.broker.close)

    def site_yaml(self, site: str) -> Path:
        """The sim-written config of `site`."""
        assert self.manifest is not None
        return next(Path(s.config) for s in self.manifest.sites if s.site == site)

    def start_agent(self, site: str, *, poll_s: float) -> tuple[Child, Path]:
        """`gridflex edge` for `site`, every point published every poll, the poll log on."""
        poll_log = self.workdir / f"{site}.poll.csv"
        cfg = edge_config(
            self.site_yaml(site),
            self.workdir / f"{site}.yaml",
            **{
                "poll.interval_s": poll_s,
                "poll.max_age_s": poll_s,  # every poll publishes every point: the rate is known
                "buffer.path": str(self.workdir / f"{site}.queue.sqlite"),
                "buffer.poll_log_file": str(poll_log),
                "cloud.resend_after_s": 2.0,
            },
        )
        child = start_edge(cfg, self.workdir / f"{site}.edge.log", name=f"edge-{site}")
        self.agents.append(child)
        return child, poll_log

    async def wait_stored(self, site: str, n: int, timeout_s: float) -> None:
        """Until the store holds at least `n` samples of `site`."""
        deadline = time.monotonic() + timeout_s
        while len(await asyncio.to_thread(self._stored, site)) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {n} samples of {site} stored in {timeout_s:g} s")
            await asyncio.sleep(0.5)

    def _stored(self, site: str) -> list[object]:
        if not self.store_path.exists():
            return []
        return list(read_store(self.store_path, site))

    async def verdict(self, site: str, poll_log: Path, *, drain_s: float) -> tuple[SampleCheck, list[Polled]]:
        """Cut the poll log now; wait (at most `drain_s`) until the store holds the cut; compare."""
        cut = parse_poll_log(await asyncio.to_thread(poll_log.read_text))
        deadline = time.monotonic() + drain_s
        while True:
            stored = await asyncio.to_thread(read_store, self.store_path, site)
            check = check_samples(cut, stored)
            if check.lost == 0 or time.monotonic() > deadline:
                return check, cut
            await asyncio.sleep(1.0)
