"""Simulated buildings plus one edge agent each, in one process: the demo's and compose's test bed.

The `TestBed` serves every building over real Modbus TCP / BACnet/IP sockets and writes a
site YAML per building; each `EdgeAgent` loads that YAML (after the overrides below are
written back into it, so the file on disk is what runs) and talks to its building over
those sockets and to the broker over MQTT, exactly as on a gateway.

Overrides exist because a demo runs on an accelerated clock: a 1 s poll at 240x would be
a 4 ms wall-clock loop per point, and a 300 s fallback would trip between two 15-minute
control periods.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from edge_agent import EdgeAgent, SiteConfig, load_config
from edge_agent.drivers import BacnetStack
from gridflex.loop.grid_truth import GridTruth
from gridflex.loop.substations import Substations
from gridflex.ops.certs import LoopbackPki
from gridflex.ops.runner import cancel_until_done
from protocols.clock import Clock
from simulators.testbed import TestBed, TestBedConfig

__all__ = ["Fleet", "FleetOptions"]

log = logging.getLogger(__name__)

#: Wall seconds a stopping agent, physics or controller task gets before it is given up (and logged):
#: a stop that hangs must not keep a demo or a test from finishing.
STOP_BOUND_S = 10.0


@dataclass(frozen=True)
class FleetOptions:
    """Agent settings the site YAMLs get before the agents start (simulated seconds unless noted)."""

    poll_interval_s: float = 60.0
    poll_max_age_s: float = 900.0
    fallback_after_s: float = 2400.0
    resend_after_s: float = 30.0  # wall seconds (the agent measures resend stalls on the host clock)
    #: `gridflex deploy-config`'s secrets folder: per site a client certificate (<site>.crt/.key,
    #: with ca.crt) or a broker password (<site>.pw, user = site id), and signing keys
    #: (signing/<site>.<kid>.key); whichever the folder holds is used.
    secrets_dir: Path | None = None
    batch_max: int = 500
    #: The demo's throwaway certificates and signing keys (mutual TLS, signed commands).
    pki: LoopbackPki | None = None


def _security(site: str, opts: FleetOptions) -> tuple[dict[str, Any], dict[str, Any]]:
    """Broker-section updates and signing keys (kid -> file) for one site, from the PKI or the secrets folder."""
    broker: dict[str, Any] = {}
    keys: dict[str, Any] = {}
    if opts.pki is not None:
        cert, key = opts.pki.client(site)
        broker["tls"] = {"ca_file": str(opts.pki.ca_file), "cert_file": str(cert), "key_file": str(key)}
        kid, path = opts.pki.signing_key(site)
        keys[kid] = str(path)
    elif opts.secrets_dir is not None:
        d = opts.secrets_dir
        if (d / f"{site}.crt").is_file():
            tls = {
                "ca_file": str(d / "ca.crt"),
                "cert_file": str(d / f"{site}.crt"),
                "key_file": str(d / f"{site}.key"),
            }
            broker["tls"] = tls
        else:
            broker.update({"username": site, "password_file": str(d / f"{site}.pw")})
            if (d / "ca.crt").is_file():
                broker["tls"] = {"ca_file": str(d / "ca.crt")}
        for path in sorted((d / "signing").glob(f"{site}.*.key")):
            keys[path.name.removeprefix(f"{site}.").removesuffix(".key")] = str(path)
    return broker, keys


def _override(doc: dict[str, Any], site: str, opts: FleetOptions) -> dict[str, Any]:
    doc = dict(doc)
    doc["poll"] = {"interval_s": opts.poll_interval_s, "max_age_s": opts.poll_max_age_s}
    doc["fallback"] = {"after_s": opts.fallback_after_s}
    doc["cloud"] = {**doc.get("cloud", {}), "resend_after_s": opts.resend_after_s}
    doc["buffer"] = {**doc.get("buffer", {}), "batch_max": opts.batch_max}
    # Per-point intervals written by the simulators assume real time; the fleet interval rules.
    for asset in doc.get("assets", []):
        for point in asset.get("points", []):
            point.pop("interval_s", None)
            point.pop("max_age_s", None)
    broker, keys = _security(site, opts)
    if broker:
        doc["broker"] = {**doc.get("broker", {}), **broker}
    if keys:
        doc["signing"] = {"keys": keys}
    return doc


class Fleet:
    """`async with Fleet(...) as fleet:` buildings served and agents running until the block ends.

    `bed_clock` drives nothing while the servers start (pass a manual `SimClock` at the
    start time); `clock` is the running clock given to the physics and the agents.
    """

    def __init__(
        self,
        bed_config: TestBedConfig,
        *,
        bed_clock: Clock,
        clock: Clock | None = None,
        out_dir: Path,
        options: FleetOptions | None = None,
    ) -> None:
        self.bed = TestBed(bed_config, bed_clock, out_dir)
        self.clock = clock
        self.options = options or FleetOptions()
        self.agents: dict[str, EdgeAgent] = {}
        self.configs: dict[str, SiteConfig] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._bed_task: asyncio.Task[None] | None = None
        self._stack: BacnetStack | None = None
        self.substations: Substations | None = None

    async def __aenter__(self) -> Fleet:
        await self.bed.__aenter__()
        try:
            for entry in self.bed.manifest.sites:
                doc = yaml.safe_load(entry.config.read_text())
                entry.config.write_text(
                    yaml.safe_dump(_override(doc, entry.site, self.options), sort_keys=False)
                )
                self.configs[entry.site] = load_config(entry.config)
        except BaseException:
            await self.bed.__aexit__(None, None, None)
            raise
        return self

    def add_site(self, site: str, config: Path, *, watermark: bool = True) -> None:
        """Run an agent for a site served outside the test bed (a substation meter) with the others.

        Its YAML gets the fleet's overrides like the buildings', except its own `fallback`
        (a metering site has nothing to command); `watermark=False` where the controller will
        not store the site (a PUBACK frees its queue rows then); call before `start`.
        """
        own = yaml.safe_load(config.read_text())
        doc = {
            **_override(own, site, self.options),
            **({"fallback": own["fallback"]} if "fallback" in own else {}),
        }
        doc["cloud"] = {**doc.get("cloud", {}), "watermark": watermark}
        config.write_text(yaml.safe_dump(doc, sort_keys=False))
        self.configs[site] = load_config(config)

    async def add_substations(self, truth: GridTruth, *, broker_port: int) -> Substations:
        """Serve a substation meter per MV/LV station of `truth`'s region, each with an agent; before `start`.

        `start` drives them from the buildings every two poll intervals. `truth` is copied (a net of
        its own, the same background households): the meters' power flows run in a thread while
        the caller may use `truth`.
        """
        own = truth.copy()
        self.substations = Substations(own, out_dir=self.bed.out_dir, broker_port=broker_port)
        await self.substations.__aenter__()
        for sub in self.substations.sites:  # the closed loop registers them as grid meters
            self.add_site(sub.site, sub.config)  # registered grid meters: the controller watermarks them
        return self.substations

    def start(self, clock: Clock) -> None:
        """Start the physics and every agent on `clock` (call once, inside the `async with`)."""
        if self._bed_task is not None:
            raise RuntimeError("fleet already started")
        self.clock = clock
        self.bed.clock = clock
        self._bed_task = asyncio.create_task(self.bed.run(), name="testbed")
        if self.substations is not None:  # every other poll: each power flow holds the GIL for ~50 ms
            self.substations.start(clock, self.bed.buildings, update_s=2 * self.options.poll_interval_s)
        for site in self.configs:
            self.start_agent(site)

    def start_agent(self, site: str) -> None:
        """(Re)start one site's agent, e.g. after `stop_agent` to bring a site back online."""
        if self.clock is None:
            raise RuntimeError("fleet not started")
        config = self.configs[site]
        if config.bacnet is not None and any(d.driver == "bacnet" for d in config.devices):
            if self._stack is None:
                self._stack = BacnetStack(config.bacnet)
            agent = EdgeAgent(config, clock=self.clock, bacnet_stack=self._stack)
        else:
            agent = EdgeAgent(config, clock=self.clock)
        self.agents[site] = agent
        self._tasks[site] = asyncio.create_task(agent.run(), name=f"agent-{site}")

    async def stop_agent(self, site: str) -> None:
        """Stop one agent cleanly (it publishes `offline`), as when a gateway is switched off."""
        task = self._tasks.pop(site, None)
        if task is not None:
            await cancel_until_done(task, bound_s=STOP_BOUND_S)

    def failed(self) -> dict[str, BaseException]:
        """Agents (and the physics) whose task ended with an error: a demo must not hide them."""
        out: dict[str, BaseException] = {}
        for name, task in [*self._tasks.items(), ("testbed", self._bed_task)]:
            if task is not None and task.done() and not task.cancelled() and task.exception() is not None:
                out[name] = task.exception()  # type: ignore[assignment]
        if self.substations is not None and (error := self.substations.failed()) is not None:
            out["substations"] = error
        return out

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for site in list(self._tasks):
            await self.stop_agent(site)
        if self._bed_task is not None:
            await cancel_until_done(self._bed_task, bound_s=STOP_BOUND_S)
        if self.substations is not None:
            await self.substations.__aexit__(exc_type, exc, tb)
        if self._stack is not None:
            await self._stack.close()
        await self.bed.__aexit__(exc_type, exc, tb)
