"""OAuth2 client credentials for the VTN: clients and roles from a file, signed bearer tokens.

Roles (OpenADR 3 user guide): a **bl** client (the DSO's business logic) writes programs
and events and reads everything; a **ven** client reads programs and events and writes its
own reports, subscriptions and VEN object. The clients live in `openadr.credentials_file`
(YAML: `clients: [{client_id, secret, role}]`); a missing file is created with one BL and
one VEN client and random secrets (mode 0600), so secrets never sit in the repository.

Tokens are `client_id.expiry.mac`, the MAC keyed by a hash of that client's secret: they
survive a restart of the controller (the ElaadNL client caches a token for half its
lifetime and would otherwise get 401s after a restart) and all of a client's tokens die
when its secret is rotated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from protocols.clock import Clock
from protocols.errors import ConfigError

__all__ = ["Client", "OAuthClients", "OAuthError", "OaRole", "load_or_create_clients"]

OaRole = Literal["bl", "ven"]
MIN_SECRET_CHARS = 16


class OAuthError(Exception):
    """A refused token request or bearer token: `status` (400/401) and the RFC 6749 `error` code."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


@dataclass(frozen=True)
class Client:
    """One OAuth2 client of the VTN and its role."""

    client_id: str
    secret: str
    role: OaRole


def _parse_clients(path: Path, doc: object) -> dict[str, Client]:
    if not isinstance(doc, dict) or not isinstance(doc.get("clients"), list):
        raise ConfigError("must be a mapping with a list `clients`", file=str(path), key="clients")
    out: dict[str, Client] = {}
    for i, row in enumerate(doc["clients"]):
        key = f"clients[{i}]"
        if not isinstance(row, dict):
            raise ConfigError("must be a mapping", file=str(path), key=key)
        cid, secret, role = row.get("client_id"), row.get("secret"), row.get("role")
        if not isinstance(cid, str) or not cid or "." in cid or len(cid) > 128:
            raise ConfigError("client_id: 1-128 characters, no '.'", file=str(path), key=f"{key}.client_id")
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_CHARS:
            raise ConfigError(
                f"secret: at least {MIN_SECRET_CHARS} characters", file=str(path), key=f"{key}.secret"
            )
        if role not in ("bl", "ven"):
            raise ConfigError("role must be 'bl' or 'ven'", file=str(path), key=f"{key}.role")
        if cid in out:
            raise ConfigError(f"client_id {cid!r} appears twice", file=str(path), key=f"{key}.client_id")
        out[cid] = Client(cid, secret, role)
    return out


def load_or_create_clients(path: Path) -> dict[str, Client]:
    """The clients of `path`; a missing file is written with a BL and a VEN client (random secrets, 0600)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "clients": [
                {"client_id": "gridflex-bl", "secret": secrets.token_urlsafe(24), "role": "bl"},
                {"client_id": "ven-1", "secret": secrets.token_urlsafe(24), "role": "ven"},
            ]
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yaml.safe_dump(doc, f, sort_keys=False)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", file=str(path)) from None
    return _parse_clients(path, doc)


class OAuthClients:
    """Issues and checks bearer tokens for the configured clients."""

    def __init__(self, clients: dict[str, Client], *, clock: Clock, ttl_s: int) -> None:
        self.clients = clients
        self.clock = clock
        self.ttl_s = ttl_s
        self.issued = 0
        self.refused = 0

    def _mac(self, client: Client, body: str) -> str:
        key = hashlib.sha256(b"gridflex-oa3-token:" + client.secret.encode()).digest()
        return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()

    def issue(self, authorization: str | None, form: dict[str, str]) -> str:
        """A token for `grant_type=client_credentials`, the credentials as HTTP Basic (or in the form)."""
        if form.get("grant_type") != "client_credentials":
            self.refused += 1
            raise OAuthError(400, "unsupported_grant_type", "grant_type must be client_credentials")
        cid, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization[:6].lower() == "basic ":
            try:
                raw = base64.b64decode(authorization[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                self.refused += 1
                raise OAuthError(
                    401, "invalid_client", "Authorization: Basic is not base64 of id:secret"
                ) from None
            cid, _, secret = raw.partition(":")
        client = self.clients.get(cid or "")
        if client is None or secret is None or not hmac.compare_digest(client.secret, secret):
            self.refused += 1
            raise OAuthError(401, "invalid_client", "unknown client or wrong secret")
        expiry = int(self.clock.now().timestamp()) + self.ttl_s
        body = f"{client.client_id}.{expiry}"
        self.issued += 1
        return f"{body}.{self._mac(client, body)}"

    def check(self, authorization: str | None) -> Client:
        """The client behind `Authorization: Bearer <token>`, or OAuthError(401)."""
        if not authorization or authorization[:7].lower() != "bearer ":
            raise OAuthError(401, "invalid_token", "Authorization: Bearer <token> required (POST /token)")
        cid, _, rest = authorization[7:].strip().partition(".")
        expiry, _, mac = rest.partition(".")
        client = self.clients.get(cid)
        if (
            client is None
            or not expiry.isdigit()
            or not hmac.compare_digest(self._mac(client, f"{cid}.{expiry}"), mac)
        ):
            raise OAuthError(401, "invalid_token", "token not issued by this VTN (or its secret was rotated)")
        if int(expiry) <= self.clock.now().timestamp():
            raise OAuthError(401, "invalid_token", "token expired")
        return client
