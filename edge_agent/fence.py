"""The fencing check: refuse a command from a dispatcher older than the newest one seen.

The controller's dispatcher holds a lease with a fencing token that grows with every
change of holder, and stamps it on every command (`Command.fence`). A dispatcher that
lost its lease (paused, partitioned) and comes back still holds its old token; its
commands are refused here as soon as the agent has seen one command from the newer
dispatcher. A command with an equal or higher token is accepted, and a higher one raises
the remembered value.

The highest token is remembered in the replay memory's SQLite file (table `fence_seen`,
see `edge_agent.replay`), committed before the command is acted on, so a restart does
not let the stale dispatcher back in. If that file was corrupt and moved aside, the
memory starts empty: the first authentic token seen becomes the floor again (the same
as a new agent), while the replay memory refuses every command issued before then.

A command without a token is accepted only where the site allows it
(`commands.require_fence: false`, the default during the rollout; deployments whose
controller stamps tokens should set it true). Without signing, anyone who can publish on
the `cmd` topic can also raise the token; fencing guards against a stale dispatcher,
signing against an attacker.
"""

from __future__ import annotations

import sqlite3
from typing import Protocol

from protocols.errors import ContractError
from protocols.messages import Command

__all__ = [
    "FENCE_SCHEMA",
    "FenceGuard",
    "FenceMemory",
    "MissingFenceError",
    "PersistentFenceGuard",
    "StaleFenceError",
    "check_fence",
]


#: The one-row table of the highest token; created by whoever opens the file (`edge_agent.replay`).
FENCE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS fence_seen "
    "(k INTEGER PRIMARY KEY CHECK (k = 0), highest INTEGER NOT NULL CHECK (highest >= 0))"
)


class StaleFenceError(ContractError):
    """The command's fencing token is lower than the highest seen (ack status `rejected`)."""


class MissingFenceError(ContractError):
    """The command carries no fencing token and this site requires one (ack status `rejected`)."""


def check_fence(cmd: Command, highest: int | None, *, require: bool) -> int | None:
    """The highest token after accepting `cmd`; raise if its token is stale or missing where required."""
    if cmd.fence is None:
        if require:
            raise MissingFenceError(
                "command without a fencing token refused: this site requires one (commands.require_fence)"
            )
        return highest
    if highest is not None and cmd.fence < highest:
        raise StaleFenceError(f"stale fencing token {cmd.fence} < {highest}")
    return cmd.fence if highest is None or cmd.fence > highest else highest


class FenceMemory(Protocol):
    """What `decision.decide` needs: check a command's token and remember the highest."""

    @property
    def highest(self) -> int | None:
        """The highest token accepted so far (None: none seen)."""
        ...

    def check(self, cmd: Command, *, require: bool) -> None:
        """Raise `StaleFenceError` / `MissingFenceError`; else remember the token if it is higher."""
        ...


class FenceGuard:
    """The fencing check in memory (tests, and agents without a replay file)."""

    def __init__(self, highest: int | None = None) -> None:
        self._highest = highest

    @property
    def highest(self) -> int | None:
        """The highest token accepted so far (None: none seen)."""
        return self._highest

    def check(self, cmd: Command, *, require: bool) -> None:
        """Raise if `cmd`'s token is stale or missing where required; else remember it."""
        self._highest = check_fence(cmd, self._highest, require=require)


class PersistentFenceGuard:
    """The fencing check with the highest token kept in a SQLite file (one row, written on a rise only).

    It shares the replay memory's connection (`PersistentReplayGuard.fence`): one file,
    one corruption rule. An equal token, the steady state, costs no write.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        db.execute(FENCE_SCHEMA)
        row = db.execute("SELECT highest FROM fence_seen WHERE k = 0").fetchone()
        self._highest: int | None = None if row is None else int(row[0])

    @property
    def highest(self) -> int | None:
        """The highest token accepted so far (None: none seen since the file was created)."""
        return self._highest

    def check(self, cmd: Command, *, require: bool) -> None:
        """Raise if `cmd`'s token is stale or missing where required; else commit it if higher."""
        after = check_fence(cmd, self._highest, require=require)
        if after is not None and after != self._highest:
            self._db.execute(
                "INSERT INTO fence_seen VALUES (0, ?) "
                "ON CONFLICT(k) DO UPDATE SET highest = max(highest, excluded.highest)",
                (after,),
            )
            self._highest = after
