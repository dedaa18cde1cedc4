"""Who is calling the market API: the DSO, an FSP (by id), the market operator, a viewer, or open reads.

The market's actors hold their own Bearer tokens (`market.dso_token_file`, one
`market.fsps.<id>.token_file` per FSP); the market operator is the controller's operator
role. A token is matched against the market's tokens first (in constant time, all of them
always), then handed to the controller's `Auth` (a wrong token is its 401). Rules:
the DSO posts requests; an FSP posts, revokes and reads only its own offers, orders and
settlements (another FSP's: 403); the operator clears and settles and reads everything;
a viewer (or anyone, while reads are open) reads everything.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Literal

from fastapi import HTTPException, Request

from cloud_controller.auth import Auth, parse_bearer, read_token_file
from cloud_controller.market.config import MarketConfig
from protocols.errors import ConfigError

__all__ = ["Actor", "MarketAuth", "MarketTokens"]

ActorRole = Literal["dso", "fsp", "operator", "viewer", "open"]


@dataclass(frozen=True)
class Actor:
    """The caller: its role, and its FSP id when it is an FSP."""

    role: ActorRole
    fsp: str | None = None

    @property
    def sees_all(self) -> bool:
        """Whether it may read every FSP's offers, orders and settlements."""
        return self.role != "fsp"


@dataclass(frozen=True)
class MarketTokens:
    """The DSO's token and each FSP's, read and checked at start (ConfigError when weak or shared)."""

    dso: str | None
    fsps: dict[str, str]

    @classmethod
    def from_config(cls, market: MarketConfig, others: tuple[str | None, ...] = ()) -> MarketTokens:
        """Read the token files of `market`; `others` (the API roles' tokens) must differ from them."""
        dso = read_token_file(market.dso_token_file, "DSO token") if market.dso_token_file else None
        fsps = {
            fsp: read_token_file(c.token_file, f"token of FSP {fsp}")
            for fsp, c in market.fsps.items()
            if c.token_file is not None
        }
        seen = [t for t in (dso, *fsps.values(), *others) if t is not None]
        if len(set(seen)) != len(seen):
            raise ConfigError("two market actors (or an actor and an API role) share a token", key="market")
        return cls(dso=dso, fsps=fsps)

    def actor_of(self, token: str) -> Actor | None:
        """The market actor `token` belongs to, compared in constant time against every token."""
        given = token.encode()
        found: Actor | None = None
        if self.dso is not None and hmac.compare_digest(given, self.dso.encode()):
            found = Actor("dso")
        for fsp, t in self.fsps.items():
            if hmac.compare_digest(given, t.encode()) and found is None:
                found = Actor("fsp", fsp)
        return found


class MarketAuth:
    """FastAPI-side checks of the market's roles on top of the controller's `Auth`."""

    def __init__(self, tokens: MarketTokens, auth: Auth) -> None:
        self.tokens = tokens
        self.auth = auth

    def actor(self, request: Request) -> Actor:
        """The caller of a read: 401 when reads need a role and none is proven."""
        header = request.headers.get("authorization")
        if header is not None:
            try:
                token = parse_bearer(header)
            except ValueError as exc:
                raise HTTPException(401, str(exc)) from None
            actor = self.tokens.actor_of(token)
            if actor is not None:
                return actor
        self.auth.read(request)
        role = self.auth.request_role(request)
        return Actor(role) if role is not None else Actor("open")

    def need(self, request: Request, *roles: ActorRole) -> Actor:
        """The caller, if it has one of `roles` (401 without a token, 403 with the wrong one)."""
        if (
            request.headers.get("authorization") is None
            and self.auth.session_role(request.cookies.get("gridflex_session")) is None
        ):
            raise HTTPException(401, f"this needs the {' or '.join(roles)} role's Bearer token")
        actor = self.actor(request)
        if actor.role not in roles:
            raise HTTPException(403, f"this needs the {' or '.join(roles)} role, not {actor.role}")
        return actor

    @staticmethod
    def may_see(actor: Actor, fsp: str) -> bool:
        """Whether `actor` may read what belongs to `fsp`."""
        return actor.sees_all or actor.fsp == fsp
