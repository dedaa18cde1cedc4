"""HMAC-SHA256 signing of commands with key ids for rotation, and replay protection.

The signature covers every field of the command except `sig` itself, serialised
canonically (sorted keys, compact JSON, UTC timestamps), so any change to value,
asset, validity, site, key id or fencing token breaks it. Keys are per site: a key leaked from one
gateway cannot command another.

Rotation by key id (`kid`): the controller signs with one key per site and names it in
the command; the site holds a `Keyring` of the keys it accepts, which during a rotation
is the current and the next. So the order is: give every site the next key, switch the
controller to it, then remove the old key from the sites. A keyring refuses an unsigned
command, an unknown key id and a bad signature, each with its own reason. A key without
an id (the single `key_file` of earlier configs) verifies commands that carry no `kid`.

`ReplayGuard` refuses a `cmd_id` seen before and anything outside its validity window;
it forgets ids once their window has passed, so its memory is bounded by the commands
valid at any one time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from protocols.errors import ContractError
from protocols.messages import Command

__all__ = [
    "KID_PATTERN",
    "CommandNotYetValidError",
    "ExpiredCommandError",
    "Keyring",
    "ReplayGuard",
    "ReplayedCommandError",
    "SignatureError",
    "SigningKey",
    "canonical_bytes",
    "sign",
    "verify",
]

#: What a key id may look like (the `kid` field of `Command`); it also names key files.
KID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


class ExpiredCommandError(ContractError):
    """The command's validity window has ended (ack status `expired`)."""


class ReplayedCommandError(ContractError):
    """The `cmd_id` was accepted before (ack status `rejected`)."""


class CommandNotYetValidError(ContractError):
    """`valid_from` lies in the future beyond the allowed clock skew (ack status `rejected`)."""


class SignatureError(ContractError):
    """Where keys are configured: the command is unsigned, names an unknown key, or its signature is bad."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One HMAC key and its id (None: a key from before key ids, for commands without `kid`)."""

    key: bytes = field(repr=False)
    kid: str | None = None

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("signing key must not be empty")
        if self.kid is not None and not KID_PATTERN.match(self.kid):
            raise ValueError(f"key id {self.kid!r} must match {KID_PATTERN.pattern}")


def canonical_bytes(cmd: Command) -> bytes:
    """The bytes a signature is computed over.

    An absent `kid`, `fence` or `request_id` is left out, so a command without them signs
    exactly as before those fields existed; a present one is covered like every other
    field (a token raised in transit would let a stale dispatcher's command through, a
    request id swapped would credit another DR request).
    """
    body = cmd.model_dump(mode="json", exclude={"sig"})
    for optional in ("kid", "fence", "request_id"):
        if body.get(optional) is None:
            body.pop(optional, None)
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _mac(cmd: Command, key: bytes) -> str:
    if not key:
        raise ValueError("signing key must not be empty")
    return hmac.new(key, canonical_bytes(cmd), hashlib.sha256).hexdigest()


def sign(cmd: Command, key: bytes | SigningKey) -> Command:
    """Return a copy of `cmd` carrying its key id (for a `SigningKey` with one) and HMAC-SHA256 signature."""
    if isinstance(key, SigningKey):
        cmd = cmd.model_copy(update={"kid": key.kid})
        key = key.key
    return cmd.model_copy(update={"sig": _mac(cmd, key)})


def verify(cmd: Command, key: bytes) -> bool:
    """True if `cmd` carries a valid signature for `key` (constant-time compare)."""
    if cmd.sig is None:
        return False
    return hmac.compare_digest(cmd.sig, _mac(cmd, key))


class Keyring:
    """The keys a site accepts commands under, by key id: the current and, during a rotation, the next."""

    def __init__(self, keys: Iterable[SigningKey]) -> None:
        self._keys: dict[str | None, bytes] = {}
        for k in keys:
            if k.kid in self._keys:
                raise ValueError(f"key id {k.kid!r} given twice")
            self._keys[k.kid] = k.key
        if not self._keys:
            raise ValueError(
                "a keyring needs at least one key (no keys = commands are not signature-checked)"
            )

    @property
    def kids(self) -> list[str | None]:
        """The key ids held (None for a key without an id)."""
        return list(self._keys)

    def _held(self) -> str:
        return ", ".join("(no id)" if k is None else k for k in self._keys)

    def check(self, cmd: Command) -> None:
        """Raise `SignatureError` with the reason unless `cmd` is signed by a held key."""
        if cmd.sig is None:
            raise SignatureError("unsigned command refused: this site requires signed commands")
        key = self._keys.get(cmd.kid)
        if key is None:
            named = "no key id" if cmd.kid is None else f"unknown key id {cmd.kid!r}"
            raise SignatureError(f"command signed with {named}; this site holds: {self._held()}")
        if not hmac.compare_digest(cmd.sig, _mac(cmd, key)):
            raise SignatureError(f"invalid signature under key id {cmd.kid or '(no id)'}")


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
