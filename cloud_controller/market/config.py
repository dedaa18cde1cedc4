"""The `market:` section of cloud.yaml: actors, congestion points, gate closure, pricing, store.

Actors (seed 002): the DSO buys (`dso_token_file`), FSPs sell (`fsps`, one token file
each, keyed by the FSP id that is also its broker identity and topic subtree), and the
market operator is the controller's own operator role (`api.operator_token_file`).
Congestion points are grid elements (the names `grid/limits` uses) with the sites behind
them; an offer may only name sites behind its congestion point.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cloud_controller.market.uftp.config import UftpConfig
from protocols.topics import validate_id

__all__ = ["AutoRequestConfig", "FspConfig", "MarketConfig"]


class FspConfig(BaseModel):
    """One flexibility service provider: the file holding its API token (>= 16 characters)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token_file: Path | None = None
    #: Set for GridFlex's own aggregator: its orders are carried out inside the controller as
    #: DR requests of this programme (own_orders.py); None: the FSP dispatches its own sites.
    own_program: str | None = None


class AutoRequestConfig(BaseModel):
    """The DSO's request from the congestion forecast, and the risk the grid rows are held to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Post, revise and withdraw requests at every congestion point after each forecast.
    enabled: bool = False
    #: P(exceed) an element may keep (the request's target and the grid rows'); the forecast's
    #: quantiles (0.1, 0.5, 0.9) allow 0.1..0.9.
    risk: float = Field(default=0.1, ge=0.1, le=0.9)
    #: The DSO's value of relief (its cost of the alternative), EUR per kWh.
    value_eur_per_kwh: float = Field(default=0.5, gt=0.0, le=1e4)
    #: A need under this is no need, and the open request is revised only by this much.
    min_kw: float = Field(default=1.0, gt=0.0, le=1e6)


class MarketConfig(BaseModel):
    """The local flexibility market's shell (docs/market.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    #: SQLite file of requests, offers, orders and settlements (default: `market.sqlite` beside `store.path`).
    store_path: Path | None = None
    dso_token_file: Path | None = None
    fsps: dict[str, FspConfig] = Field(default_factory=dict)
    #: grid element -> the sites behind it
    congestion_points: dict[str, list[str]] = Field(default_factory=dict)
    #: NODES: 2 h before delivery; down to one control period (900 s) for intraday.
    gate_closure_s: float = Field(default=7200.0, ge=0.0, le=7 * 86400.0)
    pricing: Literal["pay_as_bid", "pay_as_clear"] = "pay_as_bid"
    #: Clear by itself at the earliest gate closure of the open requests (the controller's Clock).
    auto_clear: bool = True
    #: Our policy, not a standard's: each kWh short costs this x the order's price per kWh.
    penalty_factor: float = Field(default=1.0, ge=0.0, le=100.0)
    #: Our policy: an FSP may dispute a settlement this long after it was first made (default 5 days).
    dispute_window_s: float = Field(default=5 * 86400.0, gt=0.0, le=90 * 86400.0)
    #: Days that are no working day for the baselines (public holidays; NODES skips them).
    holidays: list[date] = Field(default_factory=list, max_length=1000)
    #: Requests from the forecast; its `risk` also holds the grid rows (GOPACS) of every clearing.
    auto_request: AutoRequestConfig = Field(default_factory=AutoRequestConfig)
    #: UFTP (USEF Shapeshifter) towards configured peers, as DSO and/or AGR (docs/market.md, "UFTP")
    uftp: UftpConfig = Field(default_factory=UftpConfig)

    @model_validator(mode="after")
    def _ids(self) -> Self:
        for fsp, cfg in self.fsps.items():
            validate_id(fsp, what="FSP id")
            if cfg.own_program is not None:
                validate_id(cfg.own_program, what=f"fsps.{fsp}.own_program")
        for cp, sites in self.congestion_points.items():
            validate_id(cp, what="congestion point")
            for s in sites:
                validate_id(s, what=f"site of congestion point {cp}")
        for i, peer in enumerate(self.uftp.peers):  # a UFTP aggregator sells as one of our FSPs
            if peer.role == "AGR" and "DSO" in self.uftp.roles and peer.fsp not in self.fsps:
                raise ValueError(f"uftp.peers[{i}].fsp: {peer.fsp!r} is not in market.fsps")
        return self
