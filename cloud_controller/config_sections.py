"""The sections of `cloud.yaml` that stand on their own: lease, dashboard, grid limits, DR, OpenADR, dispatch.

Why a module of their own: `config.py` holds the file's frame (broker, store, region,
control, API, the whole `CloudConfig`) and its loader; these sections are read by one part
each (the lease, the dashboard, the grid limits, the DR service, the VTN). `config.py`
re-exports them, so `from cloud_controller.config import GridConfig` keeps working.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "AreasConfig",
    "DashboardConfig",
    "DispatchConfig",
    "DrConfig",
    "ElementLimitConfig",
    "EnvelopeConfig",
    "GridConfig",
    "LeaseConfig",
    "OpenAdrConfig",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LeaseConfig(_Model):
    """The dispatcher's lease in the store: exactly one dispatching controller per store file."""

    #: Seconds a lease lasts without renewal: how long a killed holder blocks its successor.
    ttl_s: float = Field(default=30.0, ge=1.0, le=3600.0)
    #: Seconds between renewals (and between a standby's attempts); below ttl_s.
    renew_s: float = Field(default=10.0, gt=0.0, le=1200.0)

    @model_validator(mode="after")
    def _renew_within_ttl(self) -> LeaseConfig:
        if self.renew_s >= self.ttl_s:
            raise ValueError(f"renew_s ({self.renew_s}) must be below ttl_s ({self.ttl_s})")
        return self


class DashboardConfig(_Model):
    """The operator's web pages (served by the API at `/`)."""

    enabled: bool = True
    #: IANA time zone the pages show times in (e.g. "Europe/Berlin"); None = the browser's own.
    timezone: str | None = None
    #: Seconds between the pages' polls of the API for live values.
    poll_s: float = Field(default=2.0, ge=0.2, le=300.0)

    @model_validator(mode="after")
    def _known_zone(self) -> DashboardConfig:
        if self.timezone is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"unknown time zone {self.timezone!r} (an IANA name like 'Europe/Berlin')"
                ) from None
        return self


class ElementLimitConfig(_Model):
    """An override of one element's static limit (cloud_controller/grid/limits.py): a rating or a band."""

    max_kw: float | None = Field(default=None, gt=0)
    max_loading_pct: float | None = Field(default=None, gt=0, le=1000)  # of the net's rating
    v_min_pu: float | None = Field(default=None, gt=0.5, lt=1.5)
    v_max_pu: float | None = Field(default=None, gt=0.5, lt=1.5)

    @model_validator(mode="after")
    def _one_rating(self) -> ElementLimitConfig:
        if self.max_kw is not None and self.max_loading_pct is not None:
            raise ValueError("give max_kw or max_loading_pct, not both")
        if all(v is None for v in (self.max_kw, self.max_loading_pct, self.v_min_pu, self.v_max_pu)):
            raise ValueError("an override needs max_kw, max_loading_pct, v_min_pu or v_max_pu")
        return self


class EnvelopeConfig(_Model):
    """A DSO's operating envelope: a branch capped in [from, until) (times with a zone)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    element: str = Field(min_length=1)
    start: AwareDatetime = Field(alias="from")
    until: AwareDatetime
    max_kw: float | None = Field(default=None, ge=0)
    max_loading_pct: float | None = Field(default=None, ge=0, le=1000)

    @model_validator(mode="after")
    def _valid(self) -> EnvelopeConfig:
        if (self.max_kw is None) == (self.max_loading_pct is None):
            raise ValueError("an envelope needs exactly one of max_kw and max_loading_pct")
        if self.until <= self.start:
            raise ValueError(f"until ({self.until.isoformat()}) is not after from ({self.start.isoformat()})")
        return self

    @property
    def window(self) -> tuple[datetime, datetime]:
        """[from, until) of the envelope."""
        return self.start, self.until


class GridConfig(_Model):
    """Limits of the region's elements beyond the net's own (docs/grid.md, "Limits").

    `limits`: overrides keyed by element name (a transformer's or line's `max_kw` or
    `max_loading_pct`, a bus's `v_min_pu`/`v_max_pu`); `envelopes`: time-varying caps
    (`{element, from, until, max_kw | max_loading_pct}`). Names are checked against the
    region's net when the planner is built (unknown ones stop it, with did-you-mean).
    """

    limits: dict[str, ElementLimitConfig] = {}
    envelopes: list[EnvelopeConfig] = []


class DrConfig(_Model):
    """Demand response: the contracts file loaded into the DR store at start, and where that store lives.

    `contracts` is a YAML file (`contracts: [...]`, see docs/dr.md); `store_path` the DR
    store's SQLite file (default: `dr.sqlite` beside `store.path`); `step_minutes` the
    selection's step when a request gives no intervals; `lead_s` how early an interval's
    commands are sent (inside the agents' clock-skew tolerance, 5 s); `report_after_s` how
    long after an interval's end its delivery is computed (the telemetry has arrived).
    """

    contracts: Path | None = None
    store_path: Path | None = None
    step_minutes: int = Field(default=15, ge=1, le=1440)
    lead_s: float = Field(default=2.0, ge=0.0, le=4.0)
    report_after_s: float = Field(default=10.0, ge=0.0, le=3600.0)


class OpenAdrConfig(_Model):
    """GridFlex's OpenADR 3.1 VTN (docs/openadr.md): off unless `enabled`.

    `credentials_file` holds the OAuth2 clients (`clients: [{client_id, secret, role: bl|ven}]`);
    when the file does not exist the VTN writes one with a BL and a VEN client and random
    secrets (mode 0600), so no secret is ever in the repository. `store_path` is the VTN's
    SQLite file (default: `openadr.sqlite` beside `store.path`).
    """

    enabled: bool = False
    credentials_file: Path | None = None
    store_path: Path | None = None
    token_ttl_s: int = Field(default=3600, ge=60, le=86400)
    #: Auto mode: after each congestion forecast, one event per congested station in this
    #: programme (created when missing); none = events only when something calls the function.
    auto_program: str | None = Field(default=None, min_length=1, max_length=128)
    #: Subscription callbacks (cloud_controller/openadr/notifier.py): the hosts (`host` or
    #: `host:port`) a notification may be sent to — the SSRF guard; empty = none leaves.
    callback_hosts: list[str] = Field(default_factory=list, max_length=100)
    notify_attempts: int = Field(default=3, ge=1, le=10)
    notify_backoff_s: float = Field(default=1.0, ge=0.0, le=60.0)  # doubles after each attempt
    notify_timeout_s: float = Field(default=5.0, gt=0.0, le=60.0)


_SCHEDULER = re.compile(r"^(tcp|tls)://[^\s/:]+:\d{1,5}$")


class AreasConfig(_Model):
    """Where the plan's areas are solved with `control.solve_by_area` (dispatch/areas/execution.py).

    `serial`: in the dispatcher (2 threads); `processes`: `workers` worker processes on
    this machine, started once with the planner and stopped at shutdown; `dask`: one
    actor per worker of the Dask cluster at `scheduler` (at most `workers` of them, 0 =
    all), or of a local cluster of `workers` processes when no scheduler is given. The
    answers are the same in every case; only where the LPs run differs.
    """

    execution: Literal["serial", "processes", "dask"] = "serial"
    workers: int = Field(default=2, ge=0, le=256)
    #: A Dask scheduler's address, `tcp://host:port` or `tls://host:port` (dask only).
    scheduler: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> AreasConfig:
        if self.scheduler is not None:
            if self.execution != "dask":
                raise ValueError(f"scheduler is for execution: dask, not {self.execution}")
            if not _SCHEDULER.match(self.scheduler):
                raise ValueError(f"scheduler must look like tcp://host:port, got {self.scheduler!r}")
        elif self.execution in ("processes", "dask") and self.workers < 1:
            why = "a local Dask cluster" if self.execution == "dask" else "worker processes"
            raise ValueError(f"workers must be >= 1 for {why}, got {self.workers}")
        return self


class DispatchConfig(_Model):
    """How the dispatcher's planning engine runs (today: where its areas are solved)."""

    areas: AreasConfig = AreasConfig()
