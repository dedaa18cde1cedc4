"""Operating limits of every grid element, static and time-varying (pure: no I/O).

Why one model: the controller used to know one number (the HV/MV `station_limit_kw`).
A DSO thinks per element: each transformer and line has a thermal rating, each bus a
voltage band, and an operating envelope may tighten any of them for a while (a
maintenance window, a hot afternoon). `GridLimits` holds all of them by element NAME, so
config, API, plan and violations speak the operator's language.

Where each number comes from (docs/grid.md, "Limits"):
- transformer: `sn_mva` x `parallel` x `max_loading_percent` / 100 (100 % where absent), kW
  at 1 pu and unity power factor, as the radial model rates it (a loading % is of `sn_mva`);
- line: `max_i_ka` x `df` x `parallel` x `vn_kv` x sqrt(3) x `max_loading_percent` / 100;
- bus: the net's `min_vm_pu` / `max_vm_pu` where present, else 0.95-1.05 pu;
- the HV/MV threshold (`station_limit_kw`): a limit on the HV/MV element among these;
- overrides (config `grid.limits`) replace a rating or a band;
- envelopes: `{element, from, until, max_kw | max_loading_pct}` cap a branch in [from, until).

Names: an element's pandapower `name` where it is unique, else `<table>:<index>`; the
`<table>:<index>` form (as `RadialGrid.branch_names`) is accepted for every element.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from protocols.errors import ConfigError

__all__ = [
    "DEFAULT_V_MAX_PU",
    "DEFAULT_V_MIN_PU",
    "BranchLimit",
    "BusBand",
    "Envelope",
    "GridLimits",
    "LimitOverride",
    "limits_from_pandapower",
]

DEFAULT_V_MIN_PU = 0.95
DEFAULT_V_MAX_PU = 1.05

BranchKind = Literal["trafo", "line"]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class BranchLimit:
    """A transformer's or line's thermal rating as active power at 1 pu (kW; inf = unrated)."""

    name: str
    kind: BranchKind
    ref: str  # "<table>:<pandapower index>", as RadialGrid.branch_names
    rating_kw: float
    source: str  # where the number comes from: "net", "override"
    nominal_kw: float  # 100 % loading (sn_mva, or max_i_ka x V x sqrt(3)): what a loading % is of


@dataclass(frozen=True)
class BusBand:
    """A bus's voltage band (pu)."""

    name: str
    ref: str  # "bus:<pandapower index>"
    v_min_pu: float
    v_max_pu: float
    source: str


@dataclass(frozen=True)
class LimitOverride:
    """An operator's replacement of an element's static limit (any field left None is kept)."""

    max_kw: float | None = None
    max_loading_pct: float | None = None  # of the element's nominal power (100 % loading)
    v_min_pu: float | None = None
    v_max_pu: float | None = None


@dataclass(frozen=True)
class Envelope:
    """A DSO's operating envelope: a branch capped in [start, until) at `max_kw` or a loading % of its nominal power."""

    element: str
    start: datetime
    until: datetime
    max_kw: float | None = None
    max_loading_pct: float | None = None

    def __post_init__(self) -> None:
        if (self.max_kw is None) == (self.max_loading_pct is None):
            raise ConfigError("an envelope needs exactly one of max_kw and max_loading_pct", key="envelopes")
        if self.start.tzinfo is None or self.until.tzinfo is None:
            raise ConfigError("envelope times need a time zone (e.g. 2026-12-02T17:00:00Z)", key="envelopes")
        if self.until <= self.start:
            raise ConfigError(
                f"envelope of {self.element!r}: until ({self.until.isoformat()}) is not after from "
                f"({self.start.isoformat()})",
                key="envelopes",
            )

    def expired(self, now: datetime) -> bool:
        """Whether the envelope is over (it can never bind again)."""
        return self.until <= now

    def overlaps(self, start: datetime, end: datetime) -> bool:
        """Whether the envelope is in force during any part of [start, end)."""
        return self.start < end and start < self.until

    def cap_kw(self, nominal_kw: float) -> float:
        """The envelope's cap on an element of nominal power `nominal_kw` (100 % loading)."""
        if self.max_kw is not None:
            return self.max_kw
        assert self.max_loading_pct is not None
        return nominal_kw * self.max_loading_pct / 100.0


def _unknown(name: str, known: Iterable[str], *, key: str, file: str | None) -> ConfigError:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown grid element {name!r}{hint}", file=file, key=key)


@dataclass(frozen=True)
class GridLimits:
    """Every element's limits by name, plus the envelopes in force or ahead."""

    branches: Mapping[str, BranchLimit]
    buses: Mapping[str, BusBand]
    hvmv: str | None = None  # name of the HV/MV transformer
    station_limit_kw: float | None = None  # the HV/MV threshold of the fleet's load
    envelopes: tuple[Envelope, ...] = ()
    _alias: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        alias = {b.ref: b.name for b in self.branches.values()} | {b.ref: b.name for b in self.buses.values()}
        object.__setattr__(self, "_alias", alias)

    # -- names -------------------------------------------------------------------------

    def resolve(self, name: str, *, key: str = "element", file: str | None = None) -> str:
        """The element's name (a `<table>:<index>` reference is accepted); unknown raises with did-you-mean."""
        if name in self.branches or name in self.buses:
            return name
        if name in self._alias:
            return self._alias[name]
        raise _unknown(name, [*self.branches, *self.buses], key=key, file=file)

    def name_of_ref(self, ref: str) -> str:
        """The element name of a `<table>:<index>` reference (the reference itself if unknown)."""
        return self._alias.get(ref, ref)

    # -- static + envelopes ------------------------------------------------------------

    def with_overrides(
        self, overrides: Mapping[str, LimitOverride], *, file: str | None = None
    ) -> GridLimits:
        """These limits with `overrides` (keyed by element name) applied; unknown names raise."""
        branches = dict(self.branches)
        buses = dict(self.buses)
        for raw, ov in overrides.items():
            key = f"grid.limits.{raw}"
            name = self.resolve(raw, key=key, file=file)
            if name in branches:
                if ov.v_min_pu is not None or ov.v_max_pu is not None:
                    raise ConfigError(f"{name!r} is a branch: it has no voltage band", file=file, key=key)
                b = branches[name]
                if ov.max_kw is not None and ov.max_loading_pct is not None:
                    raise ConfigError("give max_kw or max_loading_pct, not both", file=file, key=key)
                if ov.max_kw is not None:
                    branches[name] = replace(b, rating_kw=ov.max_kw, source="override")
                elif ov.max_loading_pct is not None:
                    if not math.isfinite(b.nominal_kw):
                        raise ConfigError(f"{name!r} has no rating to take a % of", file=file, key=key)
                    branches[name] = replace(
                        b, rating_kw=b.nominal_kw * ov.max_loading_pct / 100.0, source="override"
                    )
            else:
                if ov.max_kw is not None or ov.max_loading_pct is not None:
                    raise ConfigError(
                        f"{name!r} is a bus: it has a voltage band, no rating", file=file, key=key
                    )
                band = buses[name]
                lo = band.v_min_pu if ov.v_min_pu is None else ov.v_min_pu
                hi = band.v_max_pu if ov.v_max_pu is None else ov.v_max_pu
                if not lo < hi:
                    raise ConfigError(f"voltage band {lo}-{hi} pu is empty", file=file, key=key)
                buses[name] = replace(band, v_min_pu=lo, v_max_pu=hi, source="override")
        return replace(self, branches=branches, buses=buses)

    def with_envelopes(
        self, envelopes: Sequence[Envelope], *, key: str = "envelopes", file: str | None = None
    ) -> GridLimits:
        """These limits with `envelopes` replacing the current ones (names checked, branches only)."""
        checked: list[Envelope] = []
        for i, env in enumerate(envelopes):
            k = f"{key}[{i}].element"
            name = self.resolve(env.element, key=k, file=file)
            if name not in self.branches:
                raise ConfigError(
                    f"{name!r} is a bus: envelopes cap transformers and lines", file=file, key=k
                )
            if env.max_loading_pct is not None and not math.isfinite(self.branches[name].nominal_kw):
                raise ConfigError(f"{name!r} has no rating to take a % of", file=file, key=k)
            checked.append(replace(env, element=name))
        return replace(self, envelopes=tuple(checked))

    def with_station_limit(self, station_limit_kw: float | None) -> GridLimits:
        """These limits with another HV/MV threshold."""
        return replace(self, station_limit_kw=station_limit_kw)

    def pruned(self, now: datetime) -> GridLimits:
        """Without the envelopes that have expired by `now`."""
        return replace(self, envelopes=tuple(e for e in self.envelopes if not e.expired(now)))

    def rating_kw(self, name: str, start: datetime, end: datetime) -> float:
        """The element's rating over [start, end): the static one, capped by every envelope in force then."""
        b = self.branches[self.resolve(name)]
        out = b.rating_kw
        for env in self.envelopes:
            if env.element == b.name and env.overlaps(start, end):
                out = min(out, env.cap_kw(b.nominal_kw))
        return out

    def ratings_kw(self, refs: Sequence[str], starts: Sequence[datetime], period_s: float) -> FloatArray:
        """(T, K) ratings of branches `refs` (names or `<table>:<index>`; unknown = unlimited) per interval."""
        from datetime import timedelta

        dt = timedelta(seconds=period_s)
        out = np.full((len(starts), len(refs)), np.inf)
        for k, ref in enumerate(refs):
            name = self._alias.get(ref, ref)
            if name not in self.branches:
                continue
            for t, s in enumerate(starts):
                out[t, k] = self.rating_kw(name, s, s + dt)
        return out


def _name_counts(*tables: Any) -> dict[str, int]:
    """How often each non-empty name occurs over all `tables` (a bus and a line may share one)."""
    counts: dict[str, int] = {}
    for table in tables:
        for v in list(table["name"]) if "name" in table.columns else []:
            if isinstance(v, str) and v:
                counts[v] = counts.get(v, 0) + 1
    return counts


def _names(table: Any, prefix: str, counts: Mapping[str, int]) -> list[str]:
    """Each row's name where unique over the net's elements and non-empty, else `<prefix>:<index>` (row order)."""
    idx = [int(i) for i in table.index]
    raw = list(table["name"]) if "name" in table.columns else [None] * len(idx)
    return [
        str(v) if isinstance(v, str) and v and counts[v] == 1 else f"{prefix}:{i}"
        for i, v in zip(idx, raw, strict=True)
    ]


def _col(table: Any, name: str, default: float) -> FloatArray:
    """A numeric column as floats (`default` where the column is absent)."""
    if name not in table.columns:
        return np.full(len(table), default)
    return np.asarray(table[name].to_numpy(dtype=float), dtype=float)


def _pct(table: Any) -> FloatArray:
    """`max_loading_percent` per row, 100 where absent, NaN or not positive."""
    v = _col(table, "max_loading_percent", 100.0)
    return np.where(np.isfinite(v) & (v > 0), v, 100.0)


def _in_service(table: Any) -> npt.NDArray[np.bool_]:
    if "in_service" not in table.columns:
        return np.ones(len(table), dtype=bool)
    return np.asarray(table["in_service"].to_numpy(dtype=bool), dtype=bool)


def limits_from_pandapower(
    net: Any,
    *,
    hvmv_ref: str | None = None,
    station_limit_kw: float | None = None,
    v_min_pu: float = DEFAULT_V_MIN_PU,
    v_max_pu: float = DEFAULT_V_MAX_PU,
) -> GridLimits:
    """Every in-service transformer's and line's rating and every bus's band from a pandapower net.

    Transformer: nominal `sn_mva · parallel` (kW); line: `max_i_ka · df · parallel · vn_kv · √3`
    at its from bus; each rating is the nominal times `max_loading_percent` / 100.
    """
    branches: dict[str, BranchLimit] = {}
    counts = _name_counts(net.trafo, net.line, net.bus)  # names are unique over all three tables
    tr = net.trafo
    tr_nom = _col(tr, "sn_mva", np.nan) * 1e3 * _col(tr, "parallel", 1.0)
    for name, i, on, nom, pct in zip(
        _names(tr, "trafo", counts), tr.index, _in_service(tr), tr_nom, _pct(tr), strict=True
    ):
        if on:
            branches[name] = BranchLimit(
                name, "trafo", f"trafo:{int(i)}", float(nom * pct / 100.0), "net", float(nom)
            )
    ln = net.line
    vn = net.bus.vn_kv.reindex(ln.from_bus).to_numpy(dtype=float) if len(ln) else np.zeros(0)
    ln_nom = (
        _col(ln, "max_i_ka", np.nan)
        * _col(ln, "df", 1.0)
        * _col(ln, "parallel", 1.0)
        * vn
        * math.sqrt(3)
        * 1e3
    )
    for name, i, on, nom, pct in zip(
        _names(ln, "line", counts), ln.index, _in_service(ln), ln_nom, _pct(ln), strict=True
    ):
        if on:
            branches[name] = BranchLimit(
                name, "line", f"line:{int(i)}", float(nom * pct / 100.0), "net", float(nom)
            )
    buses: dict[str, BusBand] = {}
    bus = net.bus
    lo, hi = _col(bus, "min_vm_pu", np.nan), _col(bus, "max_vm_pu", np.nan)
    for name, i, on, a, b in zip(
        _names(bus, "bus", counts), bus.index, _in_service(bus), lo, hi, strict=True
    ):
        if on:
            source = "net" if math.isfinite(a) or math.isfinite(b) else "default"
            band = BusBand(
                name,
                f"bus:{int(i)}",
                float(a) if math.isfinite(a) else v_min_pu,
                float(b) if math.isfinite(b) else v_max_pu,
                source,
            )
            buses[name] = band
    hvmv = None
    if hvmv_ref is not None:
        hvmv = next((b.name for b in branches.values() if b.ref == hvmv_ref), None)
    return GridLimits(branches, buses, hvmv=hvmv, station_limit_kw=station_limit_kw)
