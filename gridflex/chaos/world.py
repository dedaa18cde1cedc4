"""The real processes a chaos scenario runs against, each its own process, started and stopped by PID.

Mosquitto (`MosquittoBroker`), `gridflex sim`, `gridflex edge` and `gridflex cloud` are
children of the chaos process through `gridflex.ops.children`: they die with it, and every
stop is bounded. `Observer` is an MQTT client in the chaos process that records what
crosses the broker (acks, events, commands) for the verdicts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import yaml

from gridflex.chaos.compare import StoredSample
from gridflex.ops import children
from protocols.codec import decode
from protocols.errors import ConfigError, GridflexError
from protocols.messages import Ack, Command, Event
from protocols.mqtt import MqttConfig, MqttSession
from protocols.testbed import Manifest

__all__ = ["Child", "Observer", "edge_config", "read_store", "start_cloud", "start_edge", "start_sim"]

GRIDFLEX = [sys.executable, "-m", "gridflex"]


@dataclass
class Child:
    """One child process of the chaos run, its log file, and how often it was killed."""

    name: str
    args: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    kills: int = 0

    def start(self) -> Child:
        """Start (again) with the same arguments, appending to the same log."""
        with self.log_path.open("ab") as out:
            self.proc = children.spawn(self.args, stdout=out, stderr=subprocess.STDOUT)
        return self

    @property
    def alive(self) -> bool:
        """Started and not exited."""
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL by PID, as a crash would, and reap."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.kills += 1

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 10 s: the exit code."""
        return None if self.proc is None else children.stop(self.proc, term_s=10.0, kill_s=5.0)

    def log_tail(self, n: int = 1500) -> str:
        """The end of the child's log, for error messages."""
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    async def wait_log(self, text: str, timeout_s: float) -> None:
        """Wait until `text` appears in the log; raise with the log's tail if the child exits first."""
        async with asyncio.timeout(timeout_s):
            while text not in self.log_tail(10**7):
                if not self.alive:
                    raise RuntimeError(f"{self.name} exited: {self.log_tail()}")
                await asyncio.sleep(0.1)


async def start_sim(
    workdir: Path, *, sites: int, broker_port: int, speed: float = 1.0
) -> tuple[Child, Manifest]:
    """`gridflex sim` with `sites` buildings (no BACnet): the child and its manifest once it serves."""
    out = workdir / "sim"
    child = Child(
        "sim",
        [
            *GRIDFLEX,
            "sim",
            "--sites",
            str(sites),
            "--no-bacnet",
            "--out",
            str(out),
            "--speed",
            str(speed),
            "--broker-port",
            str(broker_port),
        ],
        workdir / "sim.log",
    ).start()
    path = out / "manifest.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if path.exists():
            with contextlib.suppress(ConfigError):
                return child, Manifest.load(path)
        if not child.alive:
            raise RuntimeError(f"gridflex sim exited: {child.log_tail()}")
        await asyncio.sleep(0.2)
    raise RuntimeError("gridflex sim wrote no manifest in 120 s")


def edge_config(site_yaml: Path, dest: Path, **changes: Any) -> Path:
    """Copy a sim-written site config to `dest` with nested changes ("poll.interval_s": 0.05)."""
    data = yaml.safe_load(site_yaml.read_text())
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(yaml.safe_dump(data))
    return dest


def start_edge(config: Path, log_path: Path, name: str = "edge") -> Child:
    """`gridflex edge --config CONFIG` as a child process."""
    return Child(name, [*GRIDFLEX, "edge", "--config", str(config)], log_path).start()


async def start_cloud(config: Path, log_path: Path, timeout_s: float = 120.0) -> Child:
    """`gridflex cloud --config CONFIG`, returned once it is connected to the broker."""
    child = Child(
        "cloud", [*GRIDFLEX, "cloud", "--config", str(config), "--log-level", "INFO"], log_path
    ).start()
    await child.wait_log("MQTT connected", timeout_s)
    return child


def read_store(path: Path, site: str) -> list[StoredSample]:
    """Every sample row of `site` in the controller's SQLite store (read-only, WAL-safe)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        rows = db.execute("SELECT seq, asset, point, ts FROM samples WHERE site = ?", (site,)).fetchall()
    finally:
        db.close()
    return [StoredSample(int(seq), f"{asset}/{point}", round(float(ts), 6)) for seq, asset, point, ts in rows]


def store_watermark(path: Path, site: str) -> int:
    """The store's persisted watermark of `site` (-1 if none)."""
    if not path.exists():
        return -1
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        row = db.execute("SELECT seq FROM watermark WHERE site = ?", (site,)).fetchone()
    except sqlite3.OperationalError:
        return -1
    finally:
        db.close()
    return -1 if row is None else int(row[0])


@dataclass
class Observer:
    """An MQTT client recording acks, events and commands of the given topics (for the verdicts)."""

    port: int
    topics: Iterable[str]
    client_id: str = "chaos-observer"
    username: str | None = None
    password: str | None = None
    acks: list[Ack] = field(default_factory=list)
    events: list[tuple[float, Event]] = field(default_factory=list)  # (wall time received, event)
    commands: list[tuple[float, Command]] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # topics of anything else received
    _task: asyncio.Task[None] | None = None
    _ack: asyncio.Event = field(default_factory=asyncio.Event)
    _any: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_until(self, predicate: Callable[[], bool], *, timeout_s: float) -> bool:
        """Until `predicate()` holds (checked on every message, and every 0.5 s), at most `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._any.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 0.5)):
                    await self._any.wait()
        return True

    async def wait_acks(self, n: int, *, timeout_s: float) -> bool:
        """Until at least `n` acks were recorded, at most `timeout_s`; whether they were."""
        deadline = time.monotonic() + timeout_s
        while len(self.acks) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._ack.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 0.5)):
                    await self._ack.wait()
        return True

    async def _handle(self, message: aiomqtt.Message) -> None:
        payload = message.payload
        if not isinstance(payload, bytes | bytearray):
            return
        try:
            msg = decode(str(message.topic), bytes(payload))
        except GridflexError:  # an observer records, it never judges a payload
            self.other.append(str(message.topic))
            return
        now = time.time()
        self._any.set()
        if isinstance(msg, Ack):
            self.acks.append(msg)
            self._ack.set()
        elif isinstance(msg, Event):
            self.events.append((now, msg))
        elif isinstance(msg, Command):
            self.commands.append((now, msg))
        else:
            self.other.append(str(message.topic))

    async def __aenter__(self) -> Observer:
        from pydantic import SecretStr

        self.session = MqttSession(
            MqttConfig(
                port=self.port,
                client_id=self.client_id,
                reconnect_max_s=0.5,
                username=self.username,
                password=None if self.password is None else SecretStr(self.password),
            ),
            subscriptions=[(t, 1) for t in self.topics],
        )
        self._task = asyncio.create_task(self.session.run(self._handle), name=self.client_id)
        await self.session.wait_connected(30)
        return self

    async def __aexit__(self, *exc: object) -> None:
        from gridflex.ops.runner import cancel_until_done

        if self._task is not None:
            await cancel_until_done(self._task, bound_s=10.0)
