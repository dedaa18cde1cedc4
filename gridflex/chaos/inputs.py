"""Random inputs for the fuzzers and the floor: commands (well-formed or not), payload bytes, YAML edits.

Pure and seeded: the same `random.Random` gives the same inputs, so a failure found by a
chaos run can be replayed.
"""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from protocols.messages import Command

__all__ = ["EXAMPLE_SITE", "mutate", "random_command", "random_payload", "random_value"]

KINDS = ("p_limit_kw", "p_setpoint_kw", "soc_target_pct", "t_setpoint_c", "mode", "site_import_max_kw")
MODES = ("auto", "self_consumption", "hold", "fallback", "party")
_NASTY = (0.0, -0.0, 1e-300, -1e-300, 1e300, -1e300, 4.2, 4.19999, 4.2000001, -4.2, 2**31, -(2**31), 65535.5)

EXAMPLE_SITE = "examples/site.yaml"


def random_value(rng: random.Random) -> float | str:
    """A command value: mostly plausible kW, often edge cases, sometimes a mode string."""
    r = rng.random()
    if r < 0.4:
        return round(rng.uniform(-30.0, 30.0), rng.choice((0, 1, 3, 6)))
    if r < 0.7:
        return rng.choice(_NASTY)
    if r < 0.85:
        return rng.choice(MODES)
    return rng.uniform(-1e6, 1e6)


def random_command(
    rng: random.Random,
    site: str,
    assets: list[str],
    now: datetime,
    n: int,
    *,
    kinds: tuple[str, ...] = KINDS,
) -> Command | None:
    """A well-formed command with a random asset/kind/value and mostly-valid times; None if the contract refuses it."""
    valid_from = now - timedelta(seconds=rng.choice((0, 0, 1, 30)))
    ttl = rng.choice((60.0, 60.0, 600.0, 1.0))
    try:
        return Command.model_validate(
            {
                "site": site,
                "ts": now,
                "cmd_id": f"fz-{n}-{rng.getrandbits(32):08x}",
                "asset": rng.choice(assets) if rng.random() < 0.95 else rng.choice(("nope", "x" * 20)),
                "kind": rng.choice(kinds),
                "value": random_value(rng),
                "valid_from": valid_from,
                "valid_until": valid_from + timedelta(seconds=ttl),
            }
        )
    except ValueError:
        return None


def _junk(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.random()
    if depth > 2 or pick < 0.3:
        return rng.choice(
            [None, True, -1, 0, 2**63, 1.5, math.inf, "", "x" * rng.randint(0, 300), "\u0000", [], {}]
        )
    if pick < 0.6:
        return [_junk(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ["v", "site", "ts", "msg_id", "seq", "samples", "cmd_id", "asset", "kind", "value", "status"]
    return {rng.choice(keys): _junk(rng, depth + 1) for _ in range(rng.randint(0, 6))}


def random_payload(rng: random.Random, valid: bytes) -> bytes:
    """Bytes for an MQTT topic: a valid message mutated, JSON junk, or raw noise."""
    r = rng.random()
    if r < 0.4 and valid:
        data = bytearray(valid)
        for _ in range(rng.randint(1, 8)):
            op = rng.random()
            i = rng.randrange(len(data)) if data else 0
            if op < 0.4 and data:
                data[i] = rng.randrange(256)
            elif op < 0.7 and data:
                del data[i : i + rng.randint(1, 10)]
            else:
                data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 10)))
        return bytes(data)
    if r < 0.8:
        return json.dumps(_junk(rng), allow_nan=True).encode()
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, 2000)))


def mutate(rng: random.Random, data: Any) -> Any:
    """A copy of a YAML document (dicts/lists) with 1-4 random edits: a key dropped, a value replaced."""
    doc = json.loads(json.dumps(data))
    for _ in range(rng.randint(1, 4)):
        node: Any = doc
        path: list[Any] = []
        while isinstance(node, dict | list) and node and rng.random() < 0.75:
            key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
            path.append((node, key))
            node = node[key]
        if not path:
            continue
        parent, key = path[-1]
        if isinstance(parent, dict) and rng.random() < 0.3:
            del parent[key]
        else:
            parent[key] = _junk(rng) if rng.random() < 0.5 else random_value(rng)
    return doc


def now_utc() -> datetime:
    """The wall clock, for commands sent to real agents."""
    return datetime.now(UTC)
