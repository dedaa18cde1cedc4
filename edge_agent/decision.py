"""The pure command decision: verify, clamp and translate one decoded command (`decide`).

Split out of `edge_agent.commands`, which is the I/O shell around it (queue, driver
writes, read-back, acks). `decide` touches no device and no broker: apart from the replay
guard's and the fencing token's memory it is a function of the command, the site config, the clock readings and
the last ramp value, so it is also what `gridflex.loop.twin_site` applies commands with.

Order matters for safety: the signature is checked first (a forged command must neither
burn a real `cmd_id` nor raise the fencing token), then the fencing token (a stale
dispatcher's command is refused as stale, whatever else is wrong with it), then the replay
guard; every refusal happens before any I/O, so nothing rejected or expired can reach a
device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from edge_agent.clock_skew import SkewMonitor
from edge_agent.config import AssetConfig, ControlConfig, PointConfig, SiteConfig
from edge_agent.fence import FenceMemory, check_fence
from edge_agent.floor import floor_write, min_power_kw, power_scale
from edge_agent.replay import CommandGuard
from protocols.errors import ContractError
from protocols.messages import SITE_COMMAND_KINDS, AckStatus, Command
from protocols.signing import (
    CommandNotYetValidError,
    ExpiredCommandError,
    Keyring,
    SignatureError,
    SigningKey,
)

__all__ = ["Decision", "RampState", "decide"]

_INTEGER_TYPES = frozenset({"int16", "uint16", "int32", "uint32"})


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a command: write `write_value` (point units) or answer `status` right away."""

    status: AckStatus
    reason: str | None = None
    value: float | str | None = None  # command units after clamping
    write_value: float | None = None  # engineering units of the control point
    control: ControlConfig | None = None
    asset: AssetConfig | None = None
    #: Refused by the fencing check (a stale or, where required, a missing token).
    fenced: bool = False


@dataclass
class RampState:
    """The last value applied to an asset's control (command units) and when (monotonic s), for the ramp."""

    value: float
    mono: float


def _bounds(asset: AssetConfig, cmd: Command) -> tuple[float, float]:
    lo, hi = -math.inf, math.inf
    lim = asset.limits
    if cmd.kind in ("p_limit_kw", "p_setpoint_kw"):
        if lim.p_min_kw is not None:
            lo = lim.p_min_kw
        if lim.p_max_kw is not None:
            hi = lim.p_max_kw
        floor = min_power_kw(asset)
        if floor is not None:
            lo = max(lo, floor)  # §14a: never limit or set an EV/HP below its guaranteed minimum
    if cmd.kind == "p_limit_kw":
        lo = max(lo, 0.0)  # a limit on magnitude
    if cmd.kind in ("p_limit_kw", "p_setpoint_kw"):
        hi = max(hi, lo)
    if cmd.kind in ("soc_target_pct", "fan_speed_pct"):
        lo, hi = max(lo, 0.0), min(hi, 100.0)
    return lo, hi


def _validity(
    cmd: Command,
    key: bytes | Keyring | None,
    guard: CommandGuard,
    now: datetime,
    skew: SkewMonitor | None,
    fence: FenceMemory | None,
    require_fence: bool,
) -> Decision | None:
    """The refusal for a bad signature, stale token, replay or validity window, or None when the command may go on.

    Where keys are configured, an unsigned command, one signed under a key id the site
    does not hold, and a bad signature are each refused with their own reason.
    """
    if key is not None:
        keyring = Keyring([SigningKey(key)]) if isinstance(key, bytes) else key
        try:
            keyring.check(cmd)
        except SignatureError as exc:
            return Decision("rejected", exc.reason)
    try:
        if fence is not None:
            fence.check(cmd, require=require_fence)
        else:  # no memory of tokens (the twin, the fuzzers): only the rule for a missing one
            check_fence(cmd, None, require=require_fence)
    except ContractError as exc:
        return Decision("rejected", exc.reason, fenced=True)
    try:
        guard.check(cmd, now)
    except (ExpiredCommandError, CommandNotYetValidError) as exc:
        skewed = skew.explain(cmd, now) if skew is not None else None
        if skewed is not None:  # valid on the cloud's clock: name the cause, not "expired"
            return Decision("rejected", skewed)
        return Decision("expired" if isinstance(exc, ExpiredCommandError) else "rejected", exc.reason)
    except ContractError as exc:
        return Decision("rejected", exc.reason)
    return None


def _decide_mode(cmd: Command, mode: str, asset: AssetConfig, control: ControlConfig) -> Decision:
    """A `mode` command: the configured value for the mode name, still subject to the floor."""
    if mode not in control.values:
        return Decision("rejected", f"mode {mode!r} not configured for {asset.id!r}")
    write = control.values[mode]
    checked = floor_write(asset, control.point, write)
    if checked.value is None:
        return Decision("rejected", checked.note, None, None, control, asset)
    if checked.value != write:
        p_kw = _floor_kw(asset, control.point, checked.value)
        return Decision("clamped", f"clamped to {checked.note}", p_kw, checked.value, control, asset)
    return Decision("applied", None, cmd.value, write, control, asset)


def _ramped(
    cmd: Command,
    asset: AssetConfig,
    value: float,
    bounds: tuple[float, float],
    ramp: RampState | None,
    now_mono: float,
    notes: list[str],
) -> float:
    """The value moved no further from the last one than the asset's ramp rate allows since then."""
    lo, hi = bounds
    rate = asset.limits.ramp_kw_per_s
    if rate is not None and ramp is not None and cmd.kind in ("p_limit_kw", "p_setpoint_kw"):
        step = rate * max(0.0, now_mono - ramp.mono)
        ramped = min(max(value, ramp.value - step), ramp.value + step)
        ramped = min(max(ramped, lo), hi)  # never ramp through the guaranteed minimum
        if ramped != value:
            notes.append(f"ramp {rate:g} kW/s")
            value = ramped
    return value


def _to_register(
    value: float,
    bounds: tuple[float, float],
    control: ControlConfig,
    point: PointConfig,
    notes: list[str],
) -> tuple[float, float]:
    """(value, write): the written value inside the point's range and at the register's resolution."""
    lo, hi = bounds
    write = value * control.factor + control.offset
    p_lo = point.min if point.min is not None else -math.inf
    p_hi = point.max if point.max is not None else math.inf
    if not p_lo <= write <= p_hi:
        write = min(max(write, p_lo), p_hi)
        value = (write - control.offset) / control.factor
        notes.append(f"point range [{p_lo:g}, {p_hi:g}]")
    if point.type in _INTEGER_TYPES and point.scale == 1 and point.sf_address is None:
        # The register holds whole units: round, then step back inside the command bounds
        # (an EV at 6.09 A must not be written 6 A = 4.14 kW under a 4.2 kW guarantee).
        # The point's own range holds too: a register limited to 10.7 A is written 10, never 11.
        write = float(round(write))
        if write > p_hi:
            write = float(math.floor(p_hi + 1e-9))
        elif write < p_lo:
            write = float(math.ceil(p_lo - 1e-9))
        step_w = math.copysign(1.0, control.factor)
        if (write - control.offset) / control.factor < lo - 1e-9 and p_lo <= write + step_w <= p_hi:
            write += step_w
        elif (write - control.offset) / control.factor > hi + 1e-9 and p_lo <= write - step_w <= p_hi:
            write -= step_w
        rounded = (write - control.offset) / control.factor
        if abs(rounded - value) > 1e-6:
            notes.append("register resolution")
        value = rounded
    return value, write


def decide(  # noqa: PLR0913 (keyword-only collaborators, named at every call site)
    cmd: Command,
    *,
    config: SiteConfig,
    key: bytes | Keyring | None,
    guard: CommandGuard,
    now: datetime,
    ramp: RampState | None,
    now_mono: float,
    skew: SkewMonitor | None = None,
    fence: FenceMemory | None = None,
) -> Decision:
    """Verify and clamp one decoded command; pure apart from the replay guard's and the fence's memory."""
    refused = _validity(cmd, key, guard, now, skew, fence, config.commands.require_fence)
    if refused is not None:
        return refused
    try:
        asset = config.asset(cmd.asset)
    except KeyError:
        return Decision("rejected", f"unknown asset {cmd.asset!r}")
    if cmd.kind in SITE_COMMAND_KINDS:
        return _decide_site(cmd, config, asset)
    control = asset.controls.get(cmd.kind)
    if control is None:
        return Decision("rejected", f"asset {asset.id!r} does not accept {cmd.kind!r}")
    point = asset.point(control.point)
    if isinstance(cmd.value, str):
        return _decide_mode(cmd, cmd.value, asset, control)
    requested = float(cmd.value)
    value = requested
    lo, hi = _bounds(asset, cmd)
    value = min(max(value, lo), hi)
    notes: list[str] = []
    if value != requested:
        notes.append(f"asset limits [{lo:g}, {hi:g}]")
    value = _ramped(cmd, asset, value, (lo, hi), ramp, now_mono, notes)
    value, write = _to_register(value, (lo, hi), control, point, notes)
    checked = floor_write(asset, control.point, write)  # the last word on every power write
    if checked.value is None:
        return Decision("rejected", checked.note, None, None, control, asset)
    if checked.value != write:
        write = checked.value
        value = (write - control.offset) / control.factor
        notes.append(str(checked.note))
    if abs(value - requested) > 1e-6:
        return Decision("clamped", "clamped to " + ", ".join(notes), value, write, control, asset)
    return Decision("applied", None, value, write, control, asset)


def _decide_site(cmd: Command, config: SiteConfig, asset: AssetConfig) -> Decision:
    """A site-level command (a DSO cap): addressed to the site's meter, which must read `p_kw`.

    It writes no register (`write_value` None): the agent holds it with its own devices.
    """
    meter = config.site_meter()
    if meter is None or asset.id != meter.id:
        where = f"the site's meter {meter.id!r}" if meter is not None else "the site's meter (it has none)"
        return Decision("rejected", f"{cmd.kind!r} is a site cap: address it to {where}, not {asset.id!r}")
    if not any(p.name == "p_kw" for p in meter.points):
        return Decision("rejected", f"meter {meter.id!r} reads no `p_kw`: the site cap cannot be held")
    assert not isinstance(cmd.value, str)  # the contract refuses a non-positive or non-numeric cap
    return Decision("applied", None, float(cmd.value), None, None, asset)


def _floor_kw(asset: AssetConfig, point: str, write: float) -> float:
    scale = power_scale(asset, point)
    assert scale is not None  # floor_write raised the value, so the point has a power meaning
    return round(scale.to_kw(write), 6)
