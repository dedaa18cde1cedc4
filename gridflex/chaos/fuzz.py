# mypy: disable-error-code="no-untyped-call"
"""Fuzzing, N inputs per class: YAML, Modbus registers, MQTT to controller and agents, unsigned commands.

The unsigned commands are well formed, so they go through the agent's clamp path to a
faulty-free but real simulator; the other classes are malformed on purpose.

A crash is an exception that escapes where the product promises a typed error (a config that
fails other than with `ConfigError`, a driver read that raises other than `DeviceError`), or a
process of the stack that exits. An unsafe write is a device value, read back by the agent
from the real simulator after a write, outside the asset's limits or below its floor.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from edge_agent.config import SiteConfig, load_config
from edge_agent.drivers.base import DeviceError, PointRef
from edge_agent.drivers.modbus import ModbusDriver
from gridflex.chaos.context import Ctx
from gridflex.chaos.floor import example_site
from gridflex.chaos.inputs import EXAMPLE_SITE, mutate, random_command, random_payload
from gridflex.chaos.result import Result
from gridflex.chaos.world import Observer, store_watermark
from gridflex.ops.broker import free_port
from protocols.codec import encode
from protocols.errors import ConfigError
from protocols.messages import Ack, Command, Sample, TelemetryBatch
from protocols.topics import site_topic

__all__ = ["fuzz_modbus", "fuzz_yaml", "run", "unsafe_ack"]

log = logging.getLogger(__name__)
_TOL = 1e-3
_POWER = ("p_limit_kw", "p_setpoint_kw")


def fuzz_yaml(n: int, rng: random.Random) -> dict[str, int]:
    """Load `n` mutated copies of the example site config; anything but `ConfigError` is a crash."""
    base = yaml.safe_load((Path(__file__).resolve().parents[2] / EXAMPLE_SITE).read_text())
    counts = {"inputs": 0, "accepted": 0, "refused": 0, "crashes": 0}
    with tempfile.TemporaryDirectory(prefix="gridflex-fuzz-yaml-") as tmp:
        path = Path(tmp) / "site.yaml"
        for _ in range(n):
            doc = mutate(rng, base)
            path.write_text(
                yaml.safe_dump(doc) if rng.random() < 0.9 else yaml.safe_dump(doc)[: rng.randint(0, 400)]
            )
            counts["inputs"] += 1
            try:
                load_config(path)
                counts["accepted"] += 1
            except ConfigError:
                counts["refused"] += 1
            except Exception:  # the finding: a config error that is not a ConfigError
                log.exception("fuzz yaml: crash")
                counts["crashes"] += 1
    return counts


async def fuzz_modbus(n_values: int, rng: random.Random) -> dict[str, int]:
    """A faulty Modbus device (random register words, re-drawn per round) read by the agent's driver.

    Crash: a read raising other than `DeviceError`. Unsafe: a `good` reading that is not finite.
    """
    from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
    from pymodbus.server import ModbusTcpServer

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    config = example_site()
    device = next(d for d in config.devices if d.driver == "modbus")
    refs = [PointRef(a.id, p) for a in config.assets for p in a.points if p.device == device.id and p.table]
    size = 65_536 - 2
    block_hr = ModbusSequentialDataBlock(1, [0] * size)
    block_ir = ModbusSequentialDataBlock(1, [0] * size)
    ctx = ModbusServerContext(
        devices={device.unit_id: ModbusDeviceContext(hr=block_hr, ir=block_ir)}, single=False
    )
    port = free_port()
    server = ModbusTcpServer(ctx, address=("127.0.0.1", port))
    task = asyncio.create_task(server.serve_forever(), name="faulty-modbus")
    driver = ModbusDriver(device.model_copy(update={"port": port, "host": "127.0.0.1"}))
    addresses = sorted(
        {
            (p.point.table, p.point.address + i)
            for p in refs
            if p.point.address is not None
            for i in range(p.point.register_count)
        }
        | {(p.point.table, p.point.sf_address) for p in refs if p.point.sf_address is not None}
    )
    counts = {"register values": 0, "reads": 0, "good": 0, "bad": 0, "crashes": 0, "unsafe": 0}
    from pymodbus.client import AsyncModbusTcpClient

    firmware = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5.0, retries=0)
    runs = _runs([a for t, a in addresses if t == "holding"])
    try:
        await asyncio.sleep(0.2)
        await firmware.connect()
        while counts["register values"] < n_values:
            for start, length in runs:  # what a faulty firmware would hold, written by a real client
                words = [
                    rng.choice((0, 0xFFFF, 0x8000, 0x7FFF, 0x7FC0, 0x7F80, 0xFF80, rng.randrange(65536)))
                    for _ in range(length)
                ]
                await firmware.write_registers(start, words, device_id=device.unit_id)
            counts["register values"] += sum(n for _, n in runs)
            try:
                got = await driver.read(refs)
            except DeviceError:
                counts["bad"] += len(refs)
                continue
            except Exception:  # the finding
                log.exception("fuzz modbus: crash")
                counts["crashes"] += 1
                continue
            counts["reads"] += 1
            for r in got.values():
                if r.quality == "good":
                    counts["good"] += 1
                    if r.value is None or not math.isfinite(r.value):
                        counts["unsafe"] += 1
                else:
                    counts["bad"] += 1
    finally:
        firmware.close()
        await driver.close()
        await server.shutdown()
        task.cancel()
    return counts


def _runs(addresses: list[int]) -> list[tuple[int, int]]:
    """Contiguous (start, length) runs of sorted addresses, at most 100 registers each."""
    out: list[tuple[int, int]] = []
    for a in sorted(set(addresses)):
        if out and out[-1][0] + out[-1][1] == a and out[-1][1] < 100:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((a, 1))
    return out


def _step_kw(config: SiteConfig, asset_id: str, kind: str) -> float:
    """One register step of the asset's control in kW (whole amps: 0.69 kW), 0 for float registers."""
    asset = config.asset(asset_id)
    control = asset.controls.get(kind)  # type: ignore[call-overload]
    if control is None:
        return 0.0
    point = asset.point(control.point)
    if point.type not in ("int16", "uint16", "int32", "uint32"):
        return 0.0
    return float(abs(point.scale / control.factor))


def unsafe_ack(ack: Ack, kind: str | None, config: SiteConfig) -> bool:
    """An applied/clamped power command written, or read back from the device, outside limits or floor.

    Tolerance: one register step (a limit in whole amps cannot hit 11.0 kW exactly); the
    read-back may show the asset's safe state if its fallback wrote in between.
    """
    if ack.status not in ("applied", "clamped") or kind not in _POWER:
        return False
    asset = config.asset(ack.asset)
    lo = asset.limits.p_min_kw if asset.limits.p_min_kw is not None else -math.inf
    hi = asset.limits.p_max_kw if asset.limits.p_max_kw is not None else math.inf
    floor = asset.guaranteed_min_kw
    if floor and kind == "p_limit_kw":
        lo = max(lo, floor)
    tol = max(_TOL, _step_kw(config, ack.asset, kind))
    values = [v for v in (ack.applied_value, ack.read_back) if isinstance(v, float | int)]
    return any(not (lo - tol <= float(v) <= hi + tol) for v in values)


async def _send_paced(
    obs: Observer, payloads: list[tuple[str, bytes]], want_acks: bool, window: int = 200
) -> None:
    """Publish in windows; with `want_acks`, wait (bounded) for the agent to answer each window."""
    for i in range(0, len(payloads), window):
        before = len(obs.acks)
        chunk = payloads[i : i + window]
        for topic, payload in chunk:
            await obs.session.publish(topic, payload, qos=1)
        if want_acks:
            t = time.monotonic()
            done = await obs.wait_acks(before + len(chunk), timeout_s=60.0)
            log.info(
                "fuzz: %d acks of %d in %.1f s (all: %s)",
                len(obs.acks) - before,
                len(chunk),
                time.monotonic() - t,
                done,
            )


async def _fuzz_agent(ctx: Ctx, n: int, rng: random.Random) -> tuple[dict[str, int], dict[str, int]]:
    """Random payloads, then random unsigned commands, to real agents of b001 (EV) and b002 (PV, battery)."""
    stack = await ctx.stack()
    agents = {site: stack.start_agent(site, poll_s=0.5)[0] for site in ("b001", "b002")}
    configs = {site: load_config(stack.workdir / f"{site}.yaml") for site in agents}
    raw = {"inputs": 0, "acks": 0, "agent exits": 0}
    cmds = {
        "inputs": 0,
        "contract refused": 0,
        "acks": 0,
        "applied/clamped": 0,
        "unsafe writes": 0,
        "agent exits": 0,
    }
    topics = [site_topic(s, "ack") for s in agents]
    try:
        async with Observer(stack.broker.port, topics, client_id="chaos-fuzz") as obs:
            await asyncio.sleep(3.0)  # the agents subscribe
            valid = encode(_probe("b001", "probe-0"))
            payloads = [
                (site_topic(rng.choice(list(agents)), "cmd"), random_payload(rng, valid)) for _ in range(n)
            ]
            raw["inputs"] = len(payloads)
            await _send_paced(obs, payloads, want_acks=False)
            await asyncio.sleep(2.0)
            raw["acks"] = len(obs.acks)
            raw["agent exits"] = sum(1 for a in agents.values() if not a.alive)
            obs.acks.clear()
            kinds: dict[str, str] = {}
            sent: list[tuple[str, bytes]] = []
            now = datetime.now(UTC)
            for i in range(n):
                site = rng.choice(list(agents))
                if rng.random() < 0.7:  # mostly at a control the asset has: the clamp path
                    asset = rng.choice([a for a in configs[site].assets if a.controls])
                    cmd = random_command(rng, site, [asset.id], now, i, kinds=tuple(sorted(asset.controls)))
                else:
                    cmd = random_command(rng, site, [a.id for a in configs[site].assets], now, i)
                cmds["inputs"] += 1
                if cmd is None:
                    cmds["contract refused"] += 1
                    continue
                kinds[cmd.cmd_id] = cmd.kind
                sent.append((site_topic(site, "cmd"), encode(cmd)))
                if len(sent) >= 200:  # refresh validity: windows take a while
                    await _send_paced(obs, sent, want_acks=True)
                    sent, now = [], datetime.now(UTC)
            await _send_paced(obs, sent, want_acks=True)
            cmds["acks"] = len(obs.acks)
            for ack in obs.acks:
                if ack.status in ("applied", "clamped"):
                    cmds["applied/clamped"] += 1
                if unsafe_ack(ack, kinds.get(ack.cmd_id), configs[ack.site]):
                    log.error("unsafe write: %s (%s)", ack, kinds.get(ack.cmd_id))
                    cmds["unsafe writes"] += 1
            cmds["agent exits"] = sum(1 for a in agents.values() if not a.alive)
            cmds["unanswered"] = len(kinds) - cmds["acks"]
    finally:
        for a in agents.values():
            await asyncio.to_thread(a.stop)
    return raw, cmds


def _probe(site: str, cmd_id: str) -> Command:
    now = datetime.now(UTC)
    return Command(
        site=site,
        ts=now,
        cmd_id=cmd_id,
        asset="ev1",
        kind="p_limit_kw",
        value=5.0,
        valid_from=now,
        valid_until=now + timedelta(seconds=60),
    )


async def _fuzz_cloud(ctx: Ctx, n: int, rng: random.Random) -> dict[str, int]:
    """Random payloads on every edge->cloud topic of site b003; then a valid batch must still be stored."""
    stack = await ctx.stack()
    assert stack.cloud is not None
    site = "b003"
    now = datetime.now(UTC)
    valid = encode(
        TelemetryBatch(
            site=site,
            ts=now,
            samples=[Sample(seq=0, asset="meter", point="p_kw", value=1.0, unit="kW", ts=now)],
        )
    )
    counts = {"inputs": 0, "cloud exits": 0, "stored after": 0}
    async with Observer(stack.broker.port, [], client_id="chaos-fuzz-cloud") as obs:
        kinds = ("telemetry", "ack", "event", "state", "flex")
        payloads = [(site_topic(site, rng.choice(kinds)), random_payload(rng, valid)) for _ in range(n)]
        counts["inputs"] = len(payloads)
        await _send_paced(obs, payloads, want_acks=False)
        top = 10**6  # far above any seq a fuzzed batch could have set
        samples = [
            Sample(seq=top + i, asset="meter", point="p_kw", value=1.0, unit="kW", ts=now) for i in range(5)
        ]
        await obs.session.publish(
            site_topic(site, "telemetry"), encode(TelemetryBatch(site=site, ts=now, samples=samples))
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            stored = await asyncio.to_thread(_count_seq_at_least, stack.store_path, site, top)
            if stored >= 5:
                break
            await asyncio.sleep(0.5)
        counts["stored after"] = stored
    counts["cloud exits"] = 0 if stack.cloud.alive else 1
    _ = store_watermark  # the watermark may not move (a gap below `top`): count the rows instead
    return counts


def _count_seq_at_least(path: Path, site: str, seq: int) -> int:
    import sqlite3

    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return int(
            db.execute("SELECT count(*) FROM samples WHERE site = ? AND seq >= ?", (site, seq)).fetchone()[0]
        )
    finally:
        db.close()


async def run(ctx: Ctx) -> Result:
    """Every class with 10,000 inputs (200 in short mode)."""
    n = 200 if ctx.short else 10_000
    t0 = time.monotonic()
    yaml_counts = await asyncio.to_thread(fuzz_yaml, n, ctx.rng("yaml"))
    modbus = await fuzz_modbus(n, ctx.rng("modbus"))
    cloud = await _fuzz_cloud(ctx, n, ctx.rng("cloud"))
    raw, cmds = await _fuzz_agent(ctx, n, ctx.rng("agent"))
    crashes = (
        yaml_counts["crashes"]
        + modbus["crashes"]
        + cloud["cloud exits"]
        + raw["agent exits"]
        + cmds["agent exits"]
    )
    unsafe = modbus["unsafe"] + cmds["unsafe writes"]
    figures: dict[str, Any] = {
        "yaml": f"{yaml_counts['inputs']} ({yaml_counts['refused']} refused, {yaml_counts['crashes']} crashes)",
        "modbus values": f"{modbus['register values']} ({modbus['crashes']} crashes, {modbus['unsafe']} non-finite good)",
        "mqtt to cloud": f"{cloud['inputs']} (cloud alive {cloud['cloud exits'] == 0}, stored after {cloud['stored after']}/5)",
        "mqtt to agents": f"{raw['inputs']} ({raw['agent exits']} agent exits)",
        "unsigned commands": f"{cmds['inputs']} ({cmds['acks']} acked, {cmds['applied/clamped']} written, "
        f"{cmds['unanswered']} unanswered)",
        "crashes": crashes,
        "unsafe writes": unsafe,
    }
    return Result(
        "fuzz",
        f"{n:,} inputs per class: YAML, Modbus registers, MQTT to cloud and agents, unsigned commands",
        figures,
        ok=crashes == 0 and unsafe == 0 and cloud["stored after"] == 5 and cmds["unanswered"] == 0,
        wall_s=time.monotonic() - t0,
    )
