"""`GridLimits` from the controller's config, envelopes to and from JSON, and the limits' JSON view.

Why apart from `limits.py`: that module is the model; this one knows the config's pydantic
shapes (`cloud_controller.config.GridConfig`) and the API's JSON, so the model stays free
of both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from cloud_controller.config import EnvelopeConfig, GridConfig
from cloud_controller.grid.limits import Envelope, GridLimits, LimitOverride, limits_from_pandapower
from cloud_controller.grid.region import Region
from protocols.config_errors import dotted_key
from protocols.errors import ConfigError

__all__ = [
    "LimitsBook",
    "envelope_of",
    "envelopes_from_json",
    "envelopes_to_rows",
    "limits_for_region",
    "limits_view",
    "parse_envelopes",
]

_ENVELOPES = TypeAdapter(list[EnvelopeConfig])


def envelope_of(cfg: EnvelopeConfig) -> Envelope:
    """The model's envelope of a validated config/API one."""
    return Envelope(cfg.element, cfg.start, cfg.until, max_kw=cfg.max_kw, max_loading_pct=cfg.max_loading_pct)


def limits_for_region(
    region: Region,
    grid: GridConfig | None = None,
    *,
    station_limit_kw: float | None = None,
    file: str | None = None,
) -> GridLimits:
    """The region's limits from its net, with the config's overrides and envelopes (names checked)."""
    hv_ref = region.grid.branch_names[region.hvmv_branch] if region.hvmv_branch is not None else None
    limits = limits_from_pandapower(region.net, hvmv_ref=hv_ref, station_limit_kw=station_limit_kw)
    if grid is None:
        return limits
    overrides = {
        name: LimitOverride(o.max_kw, o.max_loading_pct, o.v_min_pu, o.v_max_pu)
        for name, o in grid.limits.items()
    }
    limits = limits.with_overrides(overrides, file=file)
    return limits.with_envelopes([envelope_of(e) for e in grid.envelopes], key="grid.envelopes", file=file)


def parse_envelopes(doc: Any, *, key: str = "envelopes") -> list[EnvelopeConfig]:
    """Validate a JSON list of envelopes; errors as ConfigError naming the entry and field."""
    try:
        return _ENVELOPES.validate_python(doc)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = dotted_key((key, *err["loc"])).replace(".[", "[")
        raise ConfigError(str(err["msg"]), key=loc) from None


def envelopes_to_rows(envelopes: Sequence[EnvelopeConfig]) -> list[tuple[float, str]]:
    """(until as epoch s, JSON) per envelope: what the store keeps."""
    return [(e.until.timestamp(), e.model_dump_json(by_alias=True, exclude_none=True)) for e in envelopes]


def envelopes_from_json(rows: Sequence[str]) -> list[EnvelopeConfig]:
    """Envelopes the store kept (written by `envelopes_to_rows`)."""
    return [EnvelopeConfig.model_validate_json(r) for r in rows]


def _kw(v: float) -> float | None:
    return round(v, 3) if math.isfinite(v) else None


def limits_view(limits: GridLimits, now: datetime, period_s: float) -> dict[str, Any]:
    """The JSON of `GET /grid/limits`: every element's static limit and its limit now, and the envelopes."""
    from datetime import timedelta

    end = now + timedelta(seconds=period_s)
    return {
        "station_limit_kw": limits.station_limit_kw,
        "hvmv": limits.hvmv,
        "branches": [
            {
                "name": b.name,
                "kind": b.kind,
                "ref": b.ref,
                "rating_kw": _kw(b.rating_kw),
                "nominal_kw": _kw(b.nominal_kw),
                "source": b.source,
                "limit_now_kw": _kw(limits.rating_kw(b.name, now, end)),
            }
            for b in limits.branches.values()
        ],
        "buses": [
            {"name": b.name, "ref": b.ref, "v_min_pu": b.v_min_pu, "v_max_pu": b.v_max_pu, "source": b.source}
            for b in limits.buses.values()
        ],
        "envelopes": [
            {
                "element": e.element,
                "from": e.start,
                "until": e.until,
                **({"max_kw": e.max_kw} if e.max_kw is not None else {"max_loading_pct": e.max_loading_pct}),
                "limit_kw": _kw(e.cap_kw(limits.branches[e.element].nominal_kw)),
                "active": e.start <= now < e.until,
            }
            for e in limits.envelopes
        ],
    }


class LimitsBook:
    """The limits a planner plans within: the config's (static, overrides, envelopes) and the operator's envelopes.

    Why a book: the operator's envelopes (`PUT /grid/limits`) replace each other and live
    in the store across a restart; the config's stay. `current(now)` is both, expired ones dropped.
    """

    def __init__(self, base: GridLimits) -> None:
        self.base = base
        self.operator: list[EnvelopeConfig] = []

    def check(self, envelopes: Sequence[EnvelopeConfig], *, key: str = "envelopes") -> GridLimits:
        """The limits `envelopes` would give (names checked: ConfigError naming the entry)."""
        mine = self.base.with_envelopes([envelope_of(e) for e in envelopes], key=key)
        return replace(self.base, envelopes=(*self.base.envelopes, *mine.envelopes))

    def set_operator(self, envelopes: Sequence[EnvelopeConfig]) -> None:
        """Replace the operator's envelopes (checked first: a bad set changes nothing)."""
        self.check(envelopes)
        self.operator = list(envelopes)

    def current(self, now: datetime) -> GridLimits:
        """Config and operator envelopes together, without those expired by `now`."""
        return self.check(self.operator).pruned(now)
