"""`market.uftp:` — GridFlex's UFTP participant: its roles, its domain, its peers and their keys.

No DNS: each peer is configured with its domain, role, message endpoint and Ed25519
public key (what the library's `key_lookup_function` / `endpoint_lookup_function` would
return). Our own signing key is read from `signing_key_file` (base64, libsodium's
64-byte form or a 32-byte seed) or, absent, generated at start; `GET /uftp/key` shows the
public half for the peers. An AGR peer sells into our book as the market FSP `fsp`, with
the `sites` it delivers from; a DSO peer's requests are served by the DR programme
`program`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cloud_controller.market.uftp.envelope import verify_key
from cloud_controller.market.uftp.messages import DOMAIN, Role

__all__ = ["UftpConfig", "UftpPeer"]


class UftpPeer(BaseModel):
    """Another UFTP participant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    domain: str = Field(pattern=DOMAIN)
    role: Role
    #: the full URL its SignedMessages are POSTed to (e.g. .../shapeshifter/api/v3/message)
    endpoint: str = Field(pattern=r"^https?://[^\s]+$", max_length=2048)
    #: its Ed25519 public key, base64 (32 bytes)
    public_key: str
    #: AGR peers: the market FSP id its offers are booked under (must be in `market.fsps`)
    fsp: str | None = None
    #: AGR peers: the sites it delivers from (metered at settlement; within the congestion point)
    sites: list[str] = Field(default_factory=list, max_length=10_000)
    #: DSO peers: the DR programme whose contracts answer its FlexRequests
    program: str | None = None
    #: AGR peers: EAN of each meter its Metering messages name -> the site (one of `sites`);
    #: DSO peers: EAN of each of our meters we send Metering of -> the site (behind a congestion point)
    eans: dict[Annotated[str, Field(pattern=r"^[Ee][0-9]{18}$")], str] = Field(default_factory=dict)
    #: DSO peers: its congestion point (entity address, as on the wire) -> our sites behind it
    #: (our D-Prognosis of that point sums their forecasts)
    congestion_points: dict[str, list[str]] = Field(default_factory=dict, max_length=10_000)

    @field_validator("public_key")
    @classmethod
    def _key(cls, v: str) -> str:
        verify_key(v)
        return v

    @model_validator(mode="after")
    def _role_fields(self) -> Self:
        if self.role == "AGR" and self.fsp is None:
            raise ValueError(f"AGR peer {self.domain}: `fsp` (its market FSP id) is required")
        if self.role == "DSO" and self.program is None:
            raise ValueError(f"DSO peer {self.domain}: `program` (the DR programme serving it) is required")
        if self.role == "AGR" and self.congestion_points:
            raise ValueError(f"AGR peer {self.domain}: `congestion_points` is for DSO peers")
        known = set(self.sites) | {s for sites in self.congestion_points.values() for s in sites}
        where = "its `sites`" if self.role == "AGR" else "behind one of its `congestion_points`"
        for ean, site in self.eans.items():
            if site not in known:
                raise ValueError(f"{self.role} peer {self.domain}: EAN {ean}'s site {site!r} is not {where}")
        return self


class UftpConfig(BaseModel):
    """GridFlex's own side of UFTP (docs/market.md, "UFTP")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    #: DSO: our book's requests go to the AGR peers; AGR: we answer the DSO peers from DR.
    roles: list[Role] = Field(default_factory=lambda: list[Role](["DSO", "AGR"]), min_length=1)
    #: our participant domain (`localhost` is refused by the schema: e.g. `gridflex.test`)
    domain: str = Field(default="gridflex.test", pattern=DOMAIN)
    signing_key_file: Path | None = None
    #: SQLite file of the conversations (default: `uftp.sqlite` beside the market's store)
    store_path: Path | None = None
    time_zone: str = "Europe/Amsterdam"
    #: our congestion point `cp` is `{entity_prefix}:{cp}` on the wire (an EA1 address)
    entity_prefix: str = Field(
        default="ea1.2026-12.gridflex.test", pattern=r"^ea1\.[0-9]{4}-[0-9]{2}\..{1,200}$"
    )
    #: how long our FlexOffers (AGR role) stay valid
    offer_validity_s: float = Field(default=3600.0, gt=0, le=7 * 86400.0)
    #: AGR role: what our DR flexibility is offered at, EUR per kWh of reduction (our policy)
    offer_price_eur_per_kwh: float = Field(default=0.3, ge=0.0, le=1e4)
    #: AGR role: the least activation factor our offers accept (UFTP's MinActivationFactor)
    offer_min_activation_factor: float = Field(default=0.5, ge=0.01, le=1.0)
    #: AGR role: the least time between two D-Prognoses we re-send on our own for one
    #: (peer, congestion point, day) when plan or orders change it (one ISP: our policy)
    prognosis_min_interval_s: float = Field(default=900.0, ge=0.0, le=86400.0)
    #: seconds per POST to a peer
    timeout_s: float = Field(default=10.0, gt=0, le=120.0)
    #: POSTs per message when the peer is unreachable or answers 5xx/429 (jittered backoff between)
    send_attempts: int = Field(default=3, ge=1, le=10)
    peers: list[UftpPeer] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        keys = [(p.domain, p.role) for p in self.peers]
        if len(set(keys)) != len(keys):
            raise ValueError("a peer (domain, role) is configured twice")
        return self

    def peer(self, domain: str, role: str) -> UftpPeer | None:
        """The configured peer `domain` in `role`, None when unknown."""
        return next((p for p in self.peers if p.domain == domain and p.role == role), None)
