"""From a DR selection to per-interval commands, and the planner's commands around them (pure).

What a selected source is told, per kind (`actuation`, decided once at selection time and
stored with the selection, so a restarted controller sends the same values):

| source | command kind | value per step | release (end / cancel) |
|---|---|---|---|
| battery | `p_setpoint_kw` | the selection's signed kW (the battery is idle without DR) | 0 kW |
| EV / heat pump as a load | `p_limit_kw` | its power at selection time + the signed kW, ≥ 0 | its nominal kW |
| heat-pump zone | `t_setpoint_c` (to the entry's `command_asset`, its zone) | the setpoint the selection's step asks (`t_setpoint_c`) | a successor valid 1 s: the agent relinquishes its DR priority |
| AHU fan | `fan_speed_pct` | the fan speed the selection's step asks (`fan_speed_pct`) | a successor valid 1 s, likewise |

A source without an asset the registry knows (a contract's flat curtailable `load`) has
no actuation: it is listed `not_commandable` with its reason, never silently skipped.

Timing: step k's command is valid over exactly the interval [start_k, end_k); it is sent
`lead_s` before the interval opens (the agent accepts a command up to its clock-skew
tolerance early), so the device is at its setpoint when the interval begins.

Coexistence with the planner: from selection to the event's end a selected battery is
reserved in the planner's LP (`DrActivator.reservations` → cloud_controller/live/reservations.py:
its energy kept for the event, the DR setpoint a fixed injection during it); while a request
holds an asset (from `lead_s` before its first interval to its end) the planner's commands to
it are dropped (`filter_planner`) and the DR command stands. The fleet guard's corrections are
not filtered, but a reserved battery's guard value starts from the DR setpoint: it moves only
while a limit is over (counted, `ControllerStats.guard_dr_overrides`), and such an interval
shows as shortfall (or surplus).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cloud_controller.live.types import SiteRef
from protocols.messages import Command
from protocols.signing import SigningKey, sign

__all__ = [
    "Actuation",
    "actuation",
    "filter_planner",
    "interval_bounds",
    "release_commands",
    "step_commands",
]

RELEASE_S = 120.0  # how long a release command holds before the planner's next period takes over
#: Kinds the agent writes to the BMS at its DR priority and relinquishes when their validity ends.
BMS_KINDS = frozenset({"t_setpoint_c", "fan_speed_pct"})
BMS_RELEASE_S = 1.0  # a BMS write's successor on a cancel: relinquished a second later


@dataclass(frozen=True)
class Actuation:
    """What one selected source is commanded: the asset, the kind, a value per step and its release value."""

    site: str
    asset: str
    kind: str
    values: tuple[float, ...]
    release: float | None

    def json(self) -> dict[str, Any]:
        """JSON-ready, stored beside the selection."""
        return {
            "site": self.site,
            "asset": self.asset,
            "kind": self.kind,
            "values": list(self.values),
            "release": self.release,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Actuation:
        """The stored form back."""
        rel = d.get("release")
        return cls(
            str(d["site"]),
            str(d["asset"]),
            str(d["kind"]),
            tuple(float(v) for v in d["values"]),
            None if rel is None else float(rel),
        )


def actuation(
    source: Mapping[str, Any], site: SiteRef | None, points: Mapping[str, float]
) -> Actuation | str:
    """The actuation of one selected source (`_selection_json`'s entry), or why it has none.

    `points` is the site's latest snapshot (`asset/point` → value) at selection time: an EV's
    or heat pump's power then is the base its limit moves from.
    """
    kw = [float(v) for v in source["kw"]]
    asset, kind = str(source["asset"]), str(source["kind"])
    ref = next((a for a in site.assets if a.asset == asset), None) if site is not None else None
    if ref is None:
        return f"{source['site']}/{asset}: no registered asset to command (a contract's flat load)"
    s = source["site"]
    target = str(source.get("command_asset", asset))  # a heat pump's setpoint is its zone's
    if kind == "battery":
        return Actuation(s, asset, "p_setpoint_kw", tuple(round(v, 3) for v in kw), 0.0)
    if kind == "fan" and "fan_speed_pct" in source:
        speeds = tuple(float(v) for v in source["fan_speed_pct"])
        return Actuation(s, target, "fan_speed_pct", speeds, source.get("fan_speed_release_pct"))
    if kind == "heatpump" and "t_setpoint_c" in source:
        temps = tuple(float(v) for v in source["t_setpoint_c"])
        return Actuation(s, target, "t_setpoint_c", temps, source.get("t_setpoint_release_c"))
    if ref.kind in ("ev", "hp") and ref.p_nominal_kw:
        base = float(points.get(f"{asset}/p_kw", ref.p_nominal_kw))
        limits = tuple(round(min(max(base + v, 0.0), ref.p_nominal_kw), 3) for v in kw)
        return Actuation(s, asset, "p_limit_kw", limits, float(ref.p_nominal_kw))
    return f"{s}/{asset}: no command kind for a {kind!r} source on a {ref.kind!r} asset"


def interval_bounds(start: datetime, end: datetime, n_steps: int) -> list[tuple[datetime, datetime]]:
    """The request's window split into `n_steps` equal intervals, in order."""
    dt = (end - start) / n_steps
    return [(start + k * dt, end if k == n_steps - 1 else start + (k + 1) * dt) for k in range(n_steps)]


def _command(
    now: datetime,
    a: Actuation,
    value: float,
    valid: tuple[datetime, datetime],
    request_id: str,
    cmd_id: str,
    keys: Mapping[str, bytes | SigningKey],
) -> Command:
    cmd = Command.model_validate(
        {
            "site": a.site,
            "ts": now,
            "cmd_id": cmd_id,
            "asset": a.asset,
            "kind": a.kind,
            "value": value,
            "valid_from": valid[0],
            "valid_until": valid[1],
            "request_id": request_id,
        }
    )
    key = keys.get(a.site)
    return sign(cmd, key) if key is not None else cmd


#: A BMS write's id names its kind too: a zone may take a setpoint and a fan speed in one step.
_ID_SUFFIX = {"t_setpoint_c": "-sp", "fan_speed_pct": "-fan"}


def _id_tail(a: Actuation) -> str:
    return f"{a.site}-{a.asset}{_ID_SUFFIX.get(a.kind, '')}"


def step_commands(
    now: datetime,
    request_id: str,
    step: int,
    bounds: tuple[datetime, datetime],
    actuations: Sequence[Actuation],
    keys: Mapping[str, bytes | SigningKey],
) -> list[Command]:
    """Step `step`'s commands, valid over its interval, carrying the request id (signed where keyed).

    The command ids name request, step and asset (`dr-<request>-<step>-<site>-<asset>`, with
    `-sp` / `-fan` for a BMS setpoint / fan speed, since one zone may take both; cut to the
    id's 64 characters), so a repeat after a restart is recognised by the agent as a replay.
    """
    return [
        _command(
            now,
            a,
            a.values[step],
            bounds,
            request_id,
            f"dr-{request_id}-{step}-{_id_tail(a)}"[:64],
            keys,
        )
        for a in actuations
        if step < len(a.values)
    ]


def release_commands(
    now: datetime,
    request_id: str,
    actuations: Sequence[Actuation],
    keys: Mapping[str, bytes | SigningKey],
    *,
    step: int = 0,
    hold_s: float = RELEASE_S,
) -> list[Command]:
    """The final command per asset on a cancel.

    Power kinds: the release value for `hold_s`, then the planner's commands again. BMS
    writes (`t_setpoint_c`, `fan_speed_pct`), which the agent holds at its DR priority and
    relinquishes when their validity ends (docs/edge-agent.md): a successor at the current
    step's value valid for `BMS_RELEASE_S`, so the BMS's own value returns within a poll.
    """
    stamp = int(now.timestamp())
    out: list[Command] = []
    for a in actuations:
        cmd_id = f"dr-{request_id}-rel{stamp}-{_id_tail(a)}"[:64]
        if a.kind in BMS_KINDS:
            value = a.values[min(step, len(a.values) - 1)]
            valid = (now, now + timedelta(seconds=BMS_RELEASE_S))
        elif a.release is not None:
            value, valid = a.release, (now, now + timedelta(seconds=hold_s))
        else:
            continue
        out.append(_command(now, a, value, valid, request_id, cmd_id, keys))
    return out


def filter_planner(
    commands: Sequence[Command], held: set[tuple[str, str]]
) -> tuple[list[Command], list[Command]]:
    """(kept, dropped): the planner's commands to assets a DR request holds are dropped."""
    kept = [c for c in commands if c.request_id is not None or (c.site, c.asset) not in held]
    dropped = [c for c in commands if c.request_id is None and (c.site, c.asset) in held]
    return kept, dropped
