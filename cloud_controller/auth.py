"""API roles: who may read and who may write, by Bearer token or by a dashboard session cookie.

Two roles: `operator` (writes, and everything a viewer may) and `viewer` (reads). Reads are
open until a viewer token is configured, so the loopback demo runs without a login; writes
always need the operator token. Why strict parsing: a raw token without `Bearer ` (or a
whitespace token matching an empty file) was accepted before; now the header is
`Authorization: Bearer <token>` (scheme case-insensitive, RFC 7235) or 401.

The dashboard's cookie never holds a token: it is `role.expiry.nonce.mac`, the MAC keyed by
a hash of that role's token, so a cookie cannot be forged without the token, survives a
restart, and every session of a role ends when its token is rotated.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fastapi import HTTPException, Request

from cloud_controller.config import ApiConfig
from protocols.clock import Clock
from protocols.errors import ConfigError

__all__ = [
    "MIN_TOKEN_CHARS",
    "SESSION_COOKIE",
    "ApiTokens",
    "Auth",
    "Role",
    "parse_bearer",
    "read_token_file",
]

Role = Literal["viewer", "operator"]
MIN_TOKEN_CHARS = 16
SESSION_COOKIE = "gridflex_session"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="gridflex"'}


def read_token_file(path: Path, what: str) -> str:
    """The token in `path` (one line; a trailing newline is fine), refused at start when weak.

    Raises:
        ConfigError: unreadable, empty, whitespace-only, containing whitespace, or shorter
            than MIN_TOKEN_CHARS; naming the file and the reason.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the {what}: {exc.strerror}", file=str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError(f"the {what} is not UTF-8 text", file=str(path)) from None
    token = text.strip()
    if not token:
        raise ConfigError(f"the {what} file is empty or whitespace only", file=str(path))
    if any(c.isspace() for c in token):
        raise ConfigError(f"the {what} contains whitespace (one token, one line)", file=str(path))
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(
            f"the {what} is shorter than {MIN_TOKEN_CHARS} characters ({len(token)})", file=str(path)
        )
    return token


@dataclass(frozen=True)
class ApiTokens:
    """The configured tokens; `viewer is None` means reads are open (no roles configured)."""

    operator: str | None = None
    viewer: str | None = None

    @classmethod
    def from_config(cls, api: ApiConfig) -> ApiTokens:
        """Read and check the token files of `api` (ConfigError on a weak or ambiguous token)."""
        operator = read_token_file(api.operator_file, "operator token") if api.operator_file else None
        viewer = read_token_file(api.viewer_token_file, "viewer token") if api.viewer_token_file else None
        if viewer is not None and operator is not None and hmac.compare_digest(viewer, operator):
            raise ConfigError(
                "the viewer token equals the operator token (a role must be told by its token)",
                file=str(api.viewer_token_file),
            )
        return cls(operator=operator, viewer=viewer)

    @property
    def roles_on(self) -> bool:
        """Whether reads need a role (a viewer token is configured)."""
        return self.viewer is not None

    def role_of(self, token: str) -> Role | None:
        """The role `token` grants, compared in constant time; None for a wrong token."""
        given = token.encode()
        role: Role | None = None
        # both compared always, so the time does not tell which role a guess came close to
        if self.operator is not None and hmac.compare_digest(given, self.operator.encode()):
            role = "operator"
        if self.viewer is not None and hmac.compare_digest(given, self.viewer.encode()):
            role = role or "viewer"
        return role

    def token_of(self, role: Role) -> str | None:
        """The token of `role`, if configured."""
        return self.operator if role == "operator" else self.viewer


def parse_bearer(header: str) -> str:
    """The token of an `Authorization: Bearer <token>` value; ValueError for anything else."""
    scheme, sep, token = header.strip().partition(" ")
    if not sep or scheme.lower() != "bearer":
        raise ValueError("the Authorization header must be 'Bearer <token>'")
    if not token or any(c.isspace() for c in token):
        raise ValueError("'Bearer' must be followed by exactly one token")
    return token


class Auth:
    """Decides a request's role from its Bearer header or session cookie; FastAPI dependencies."""

    def __init__(self, tokens: ApiTokens, *, clock: Clock, session_s: float) -> None:
        self.tokens = tokens
        self.clock = clock
        self.session_s = session_s

    # -- sessions (the dashboard's cookie) --------------------------------------------

    def _mac(self, role: Role, body: str) -> str:
        token = self.tokens.token_of(role) or ""
        key = hashlib.sha256(b"gridflex-session\0" + token.encode()).digest()
        return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()

    def issue_session(self, role: Role) -> str:
        """A cookie value for `role`, valid for `session_s` of the injected clock."""
        expires = int(self.clock.now().timestamp() + self.session_s)
        body = f"{role}.{expires}.{secrets.token_hex(8)}"
        return f"{body}.{self._mac(role, body)}"

    def session_role(self, cookie: str | None) -> Role | None:
        """The role of a session cookie that is well formed, correctly signed and unexpired."""
        if not cookie:
            return None
        parts = cookie.split(".")
        if len(parts) != 4 or parts[0] not in ("viewer", "operator") or not parts[1].isdigit():
            return None
        role: Role = "operator" if parts[0] == "operator" else "viewer"
        if self.tokens.token_of(role) is None:
            return None
        if not hmac.compare_digest(parts[3], self._mac(role, ".".join(parts[:3]))):
            return None
        return role if int(parts[1]) > self.clock.now().timestamp() else None

    # -- requests ---------------------------------------------------------------------

    def request_role(self, request: Request) -> Role | None:
        """The role a request proves: its Bearer header, else its session cookie.

        A Bearer header that is malformed or wrong is a 401 (never silently ignored); a
        missing, expired or forged cookie gives None.
        """
        header = request.headers.get("authorization")
        if header is not None:
            try:
                token = parse_bearer(header)
            except ValueError as exc:
                raise HTTPException(401, str(exc), headers=_CHALLENGE) from None
            role = self.tokens.role_of(token)
            if role is None:
                raise HTTPException(401, "wrong Bearer token", headers=_CHALLENGE)
            return role
        return self.session_role(request.cookies.get(SESSION_COOKIE))

    def page_role(self, request: Request) -> Role | None:
        """A dashboard page's role: its session's (None without a valid one; pages are open when roles are off)."""
        return self.session_role(request.cookies.get(SESSION_COOKIE))

    def may_operate(self, role: Role | None) -> bool:
        """Whether a page shows operator controls (always when roles are off: the open demo)."""
        return not self.tokens.roles_on or role == "operator"

    def read(self, request: Request) -> None:
        """Dependency of every read: open without a viewer token, else viewer or operator (401)."""
        if not self.tokens.roles_on:
            return
        if self.request_role(request) is None:
            raise HTTPException(401, "this API needs a viewer or operator Bearer token", headers=_CHALLENGE)

    def write(self, request: Request) -> None:
        """Dependency of every write: the operator role (403 without an operator token configured)."""
        if self.tokens.operator is None:
            raise HTTPException(403, "writes are disabled: no api.operator_token_file configured")
        role = self.request_role(request)
        if role is None:
            raise HTTPException(401, "missing Bearer token", headers=_CHALLENGE)
        if role != "operator":
            raise HTTPException(403, "this needs the operator role")

    def expensive(self, request: Request) -> None:
        """Dependency of on-demand computations (AC scenarios): operator once roles are on, else open."""
        if self.tokens.roles_on:
            self.write(request)
