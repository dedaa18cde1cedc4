"""DR programmes and flexibility contracts (O'Connell & Keane 2021 §2.1): which sites a request may use.

A contract binds one site to one programme: the directions it offers, its maximum kW,
events per day, maximum duration, minimum notice, the comfort band, CO2 limit and
battery SOC floor the site's owner agreed to, and a price (€/kWh) or the seed's weight
W ∈ [0, 2.5] (Siebert et al.). `check_request` is the seed's "verify flexibility contracts"
step: pure, it answers every rule a request breaks for one contract, each refusal
naming its rule, so an operator sees why a site was left out. Contracts arrive from
outside (API, YAML): they are strict pydantic models with named errors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocols.messages import DRRequest

__all__ = [
    "RULES",
    "Contract",
    "Direction",
    "Eligibility",
    "Refusal",
    "check_request",
    "eligible_sites",
]

Direction = Literal["reduce", "increase"]
Rule = Literal["program", "window", "duration", "notice", "count", "direction"]
#: Every rule a request is checked against, in the order the refusals are listed.
RULES: tuple[Rule, ...] = ("program", "window", "duration", "notice", "count", "direction")


class Contract(BaseModel):
    """One site's flexibility contract under one programme."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    site: Annotated[str, Field(min_length=1, max_length=64)]
    program: Annotated[str, Field(min_length=1, max_length=64)]
    directions: frozenset[Direction] = Field(min_length=1)
    p_max_kw: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    events_per_day: Annotated[int, Field(ge=1)]
    max_duration: timedelta
    min_notice: timedelta = timedelta(0)
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    comfort_t_min_c: float = 20.0
    comfort_t_max_c: float = 25.0
    co2_limit_ppm: Annotated[float, Field(gt=0)] = 1000.0
    soc_floor_pct: Annotated[float, Field(ge=0, le=100)] = 5.0
    price_eur_per_kwh: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    weight: Annotated[float, Field(ge=0, le=2.5)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.max_duration <= timedelta(0):
            raise ValueError("max_duration must be > 0")
        if self.min_notice < timedelta(0):
            raise ValueError("min_notice must be >= 0")
        if self.comfort_t_min_c >= self.comfort_t_max_c:
            raise ValueError(f"comfort band {self.comfort_t_min_c}..{self.comfort_t_max_c} °C is empty")
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        return self

    @property
    def key(self) -> tuple[str, str]:
        """(site, program): a site has at most one contract per programme."""
        return (self.site, self.program)


@dataclass(frozen=True)
class Refusal:
    """One broken rule: which, and why in words with the numbers."""

    rule: Rule
    reason: str


@dataclass(frozen=True)
class Eligibility:
    """A contract's answer to one request: accepted when no rule refused it."""

    site: str
    refusals: tuple[Refusal, ...]

    @property
    def accepted(self) -> bool:
        """True when the request passed every rule."""
        return not self.refusals


def check_request(
    contract: Contract, request: DRRequest, *, events_that_day: int, received: datetime | None = None
) -> Eligibility:
    """Check `request` against `contract`; every broken rule is listed (see `RULES`).

    `events_that_day` counts the events this site already accepted under the programme on
    the request's start day (the store knows); `received` is when the request arrived
    (default its `ts`), the notice being start − received.
    """
    refusals: list[Refusal] = []
    if request.program != contract.program:
        refusals.append(
            Refusal(
                "program", f"request is for programme {request.program!r}, contract is {contract.program!r}"
            )
        )
    if contract.valid_from is not None and request.start < contract.valid_from:
        refusals.append(
            Refusal(
                "window",
                f"starts {request.start.isoformat()} before the contract's {contract.valid_from.isoformat()}",
            )
        )
    if contract.valid_until is not None and request.end > contract.valid_until:
        refusals.append(
            Refusal(
                "window",
                f"ends {request.end.isoformat()} after the contract's {contract.valid_until.isoformat()}",
            )
        )
    duration = request.end - request.start
    if duration > contract.max_duration:
        refusals.append(
            Refusal("duration", f"lasts {duration} > the contract's maximum {contract.max_duration}")
        )
    notice = request.start - (received or request.ts)
    if notice < contract.min_notice:
        refusals.append(Refusal("notice", f"notice {notice} < the contract's minimum {contract.min_notice}"))
    if events_that_day >= contract.events_per_day:
        refusals.append(
            Refusal(
                "count",
                f"{events_that_day} event(s) already that day, the contract allows {contract.events_per_day}",
            )
        )
    if request.direction not in contract.directions:
        refusals.append(
            Refusal(
                "direction", f"asks to {request.direction}, the contract offers {sorted(contract.directions)}"
            )
        )
    return Eligibility(site=contract.site, refusals=tuple(refusals))


def eligible_sites(
    contracts: Iterable[Contract],
    request: DRRequest,
    *,
    events_that_day: Mapping[str, int],
    received: datetime | None = None,
) -> tuple[list[Contract], list[Eligibility]]:
    """The programme's contracts that accept `request` (restricted to `request.sites` if given), and the refused.

    Contracts of other programmes are not the request's business and are skipped, not refused.
    """
    wanted = set(request.sites)
    accepted: list[Contract] = []
    refused: list[Eligibility] = []
    for contract in contracts:
        if contract.program != request.program or (wanted and contract.site not in wanted):
            continue
        verdict = check_request(
            contract, request, events_that_day=events_that_day.get(contract.site, 0), received=received
        )
        (accepted.append(contract) if verdict.accepted else refused.append(verdict))
    return accepted, refused
