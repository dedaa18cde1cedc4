"""Optional HMAC-SHA256 signing of commands, with replay protection.

The signature covers every field of the command except `sig` itself, serialised
canonically (sorted keys, compact JSON, UTC timestamps), so any change to value,
asset, validity or site breaks it. Keys are per site: a key leaked from one
gateway cannot command another. `ReplayGuard` refuses a `cmd_id` seen before and
anything outside its validity window; it forgets ids once their window has passed,
so its memory is bounded by the commands valid at any one time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta

from protocols.errors import ContractError
from protocols.messages import Command

__all__ = [
    "CommandNotYetValidError",
    "ExpiredCommandError",
    "ReplayGuard",
    "ReplayedCommandError",
    "canonical_bytes",
    "sign",
    "verify",
]


class ExpiredCommandError(ContractError):
    """The command's validity window has ended (ack status `expired`)."""


class ReplayedCommandError(ContractError):
    """The `cmd_id` was accepted before (ack status `rejected`)."""


class CommandNotYetValidError(ContractError):
    """`valid_from` lies in the future beyond the allowed clock skew (ack status `rejected`)."""


def canonical_bytes(cmd: Command) -> bytes:
    """The bytes a signature is computed over."""
    body = cmd.model_dump(mode="json", exclude={"sig"})
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _mac(cmd: Command, key: bytes) -> str:
    if not key:
        raise ValueError("signing key must not be empty")
    return hmac.new(key, canonical_bytes(cmd), hashlib.sha256).hexdigest()


def sign(cmd: Command, key: bytes) -> Command:
    """Return a copy of `cmd` carrying its HMAC-SHA256 signature."""
    return cmd.model_copy(update={"sig": _mac(cmd, key)})


def verify(cmd: Command, key: bytes) -> bool:
    """True if `cmd` carries a valid signature for `key` (constant-time compare)."""
    if cmd.sig is None:
        return False
    return hmac.compare_digest(cmd.sig, _mac(cmd, key))


class ReplayGuard:
    """Accept each `cmd_id` once, and only inside its validity window."""

    def __init__(self, *, max_clock_skew: timedelta = timedelta(seconds=5)) -> None:
        self._seen: dict[str, datetime] = {}
        self._skew = max_clock_skew

    def check(self, cmd: Command, now: datetime) -> None:
        """Raise ContractError if `cmd` is a replay, not yet valid, or expired; else remember it."""
        self._forget_expired(now)
        if cmd.cmd_id in self._seen:
            raise ReplayedCommandError(f"replayed cmd_id {cmd.cmd_id!r}")
        if now >= cmd.valid_until:
            raise ExpiredCommandError(f"command {cmd.cmd_id!r} expired at {cmd.valid_until.isoformat()}")
        if now + self._skew < cmd.valid_from:
            raise CommandNotYetValidError(
                f"command {cmd.cmd_id!r} not valid before {cmd.valid_from.isoformat()}"
            )
        self._seen[cmd.cmd_id] = cmd.valid_until

    def __len__(self) -> int:
        return len(self._seen)

    def _forget_expired(self, now: datetime) -> None:
        expired = [cmd_id for cmd_id, until in self._seen.items() if until + self._skew < now]
        for cmd_id in expired:
            del self._seen[cmd_id]
