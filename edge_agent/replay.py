"""The replay guard that survives restarts: every accepted `cmd_id` is kept in SQLite until it expires.

An in-memory guard forgets everything when the agent restarts, so a command captured
on the wire could be applied again within its validity window. This guard commits
each accepted `cmd_id` with its `valid_until` before the command is acted on (WAL,
`synchronous=NORMAL`: a committed row survives a crash or SIGKILL of the agent), checks
by primary key (one indexed lookup, not a scan), and purges expired ids at most once a
minute through an index on `valid_until`.

The same file keeps the highest fencing token seen (`edge_agent.fence`, table
`fence_seen`): both are "what this agent has been commanded", with one corruption rule.

The file sits beside the sample queue (`<queue>.replay.sqlite`), not inside it: a
corrupt queue is moved aside and replaced, and that must not wipe the replay memory.
If this file itself is corrupt it is moved aside too; the guard then refuses every
command issued before it was recreated (it cannot know whether those were applied).
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from edge_agent.fence import FENCE_SCHEMA, PersistentFenceGuard
from edge_agent.sqlite_files import is_corruption, move_aside
from protocols.messages import Command
from protocols.signing import CommandNotYetValidError, ExpiredCommandError, ReplayedCommandError

__all__ = ["CommandGuard", "PersistentReplayGuard", "replay_path"]

PURGE_EVERY = timedelta(seconds=60)


class CommandGuard(Protocol):
    """What `commands.decide` needs: refuse replays and commands outside their validity."""

    def check(self, cmd: Command, now: datetime) -> None:
        """Raise if `cmd` is a replay or outside its validity window at `now`; return if it may run."""
        ...


def replay_path(queue_path: Path) -> Path:
    """`state/b001.sqlite` -> `state/b001.replay.sqlite`."""
    return queue_path.with_name(f"{queue_path.stem}.replay.sqlite")


class PersistentReplayGuard:
    """Accept each `cmd_id` once across restarts, and only inside its validity window.

    Raises the same errors as `protocols.signing.ReplayGuard`. `moved_aside` is the
    forensic copy of a corrupt file found at start (None normally).
    """

    def __init__(
        self, path: Path, *, now: datetime, max_clock_skew: timedelta = timedelta(seconds=5)
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._skew = max_clock_skew
        self.moved_aside: Path | None = None
        #: Commands issued before this are refused (the memory of them was lost).
        self.trust_from: datetime | None = None
        try:
            self._db = self._open(path)
        except sqlite3.DatabaseError as exc:
            if not is_corruption(exc):
                raise
            self.moved_aside = move_aside(path, now)
            self.trust_from = now
            self._db = self._open(path)
        #: The highest fencing token seen, in the same file (`edge_agent.fence`).
        self.fence = PersistentFenceGuard(self._db)
        self._purged_at = now - PURGE_EVERY

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(
                """
                CREATE TABLE IF NOT EXISTS seen_cmd (cmd_id TEXT PRIMARY KEY, valid_until REAL NOT NULL)
                    WITHOUT ROWID;
                CREATE INDEX IF NOT EXISTS seen_cmd_valid_until ON seen_cmd (valid_until);
                """
            )
            db.execute(FENCE_SCHEMA)
            db.execute("SELECT COUNT(*) FROM seen_cmd").fetchone()
            db.execute("SELECT COUNT(*) FROM fence_seen").fetchone()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def check(self, cmd: Command, now: datetime) -> None:
        """Raise if `cmd` is a replay, not yet valid, or expired; else remember it (committed)."""
        if now - self._purged_at >= PURGE_EVERY:
            self.purge(now)
        db = self._db
        if db.execute("SELECT 1 FROM seen_cmd WHERE cmd_id = ?", (cmd.cmd_id,)).fetchone() is not None:
            raise ReplayedCommandError(f"replayed cmd_id {cmd.cmd_id!r}")
        if self.trust_from is not None and cmd.ts < self.trust_from:
            raise ReplayedCommandError(
                f"command {cmd.cmd_id!r} issued before the replay memory was rebuilt "
                f"({self.trust_from.isoformat()}): refused in case it was applied before"
            )
        if now >= cmd.valid_until:
            raise ExpiredCommandError(f"command {cmd.cmd_id!r} expired at {cmd.valid_until.isoformat()}")
        if now + self._skew < cmd.valid_from:
            raise CommandNotYetValidError(
                f"command {cmd.cmd_id!r} not valid before {cmd.valid_from.isoformat()}"
            )
        db.execute("INSERT INTO seen_cmd VALUES (?, ?)", (cmd.cmd_id, cmd.valid_until.timestamp()))

    def purge(self, now: datetime) -> int:
        """Forget ids whose validity (plus the allowed skew) has ended; return how many."""
        self._purged_at = now
        cur = self._db.execute(
            "DELETE FROM seen_cmd WHERE valid_until < ?", ((now - self._skew).timestamp(),)
        )
        return int(cur.rowcount)

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM seen_cmd").fetchone()[0])

    def close(self) -> None:
        """Close the SQLite connection."""
        self._db.close()
