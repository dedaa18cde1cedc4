"""Registered sites, their assets and the household (bus) of the region each connects to.

Two sources: a registry YAML (`sites: [{site, region_site, assets: [...]}]`) or a test
bed's `manifest.json`, validated with the contract's `protocols.testbed.Manifest` (the
controller never imports the simulators), whose sites get households assigned
deterministically (seeded, spread over the region).

Grid meters (`grid_meters: [{site, station}]` in the YAML, or the `substations.json` that
`gridflex sim` and the demo write beside manifest.json) are sites that measure a station's
transformer: ingest stores and watermarks them, the state estimate uses them, and nothing
counts them as load or commands them. Their stations are checked against the region when
the planner builds it (`Registry.check_stations`).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import numpy as np
import yaml

from cloud_controller.live.types import AssetKindName, AssetRef, GridMeterRef, SiteRef
from protocols.config_errors import unknown_key_reason
from protocols.errors import ConfigError
from protocols.testbed import Manifest
from protocols.topics import validate_id

__all__ = ["SUBSTATIONS_FILE", "GridMeterRef", "Registry", "load_registry", "registry_from_manifest"]

GUARANTEED_MIN_KW = 4.2  # §14a EnWG for controllable consumers (EV chargers, heat pumps)
KINDS = set(get_args(AssetKindName))
SITE_KEYS = frozenset({"site", "region_site", "assets", "grid_connection"})
#: A site's connection limits as its contract states them (the agent's site YAML holds the same).
GRID_CONNECTION_KEYS = frozenset({"import_max_kw", "export_max_kw"})
METER_KEYS = frozenset({"site", "station"})
#: Written by `gridflex sim` and the demo beside manifest.json: `{"substations": [{"site", "station", ...}]}`.
SUBSTATIONS_FILE = "substations.json"
ASSET_KEYS = frozenset({"asset", "kind", "p_nominal_kw", "capacity_kwh", "p_guaranteed_min_kw"})


@dataclass(frozen=True)
class Registry:
    """The registered sites (unique ids, one site per household) and grid meters (one per station)."""

    sites: tuple[SiteRef, ...]
    grid_meters: tuple[GridMeterRef, ...] = ()

    def __post_init__(self) -> None:
        ids = [s.site for s in self.sites]
        if len(set(ids)) != len(ids):
            raise ConfigError("duplicate site ids", key="sites")
        buses = [s.region_site for s in self.sites]
        if len(set(buses)) != len(buses):
            raise ConfigError("two sites on one household of the region", key="sites")
        both = ids + [m.site for m in self.grid_meters]
        if len(set(both)) != len(both):
            dup = sorted({i for i in both if both.count(i) > 1})[0]
            raise ConfigError(f"site id {dup!r} registered twice (sites and grid_meters)", key="grid_meters")
        stations = [m.station for m in self.grid_meters]
        if len(set(stations)) != len(stations):
            dup = sorted({s for s in stations if stations.count(s) > 1})[0]
            raise ConfigError(f"two grid meters on station {dup!r}", key="grid_meters")

    @property
    def meter_ids(self) -> list[str]:
        """The registered grid meters' site ids, in registry order."""
        return [m.site for m in self.grid_meters]

    def check_stations(self, stations: Collection[str]) -> None:
        """Raise a ConfigError naming the first grid meter whose station is not in the region."""
        for i, m in enumerate(self.grid_meters):
            if m.station not in stations:
                raise ConfigError(
                    f"grid meter {m.site!r}: station {m.station!r} is not in the region "
                    f"({len(stations)} MV/LV stations)",
                    key=f"grid_meters[{i}].station",
                )

    def site(self, site_id: str) -> SiteRef:
        """The registered site `site_id`; `KeyError` if there is none."""
        for s in self.sites:
            if s.site == site_id:
                return s
        raise KeyError(site_id)

    @property
    def ids(self) -> list[str]:
        """The registered site ids, in registry order."""
        return [s.site for s in self.sites]


def _asset(doc: Any, where: str, file: str) -> AssetRef:
    if not isinstance(doc, dict):
        raise ConfigError("an asset must be a mapping", file=file, key=where)
    unknown = sorted(set(doc) - ASSET_KEYS)
    if unknown:
        raise ConfigError(unknown_key_reason(unknown[0], ASSET_KEYS), file=file, key=f"{where}.{unknown[0]}")
    try:
        asset = validate_id(str(doc["asset"]), what="asset id")
        kind = doc["kind"]
    except KeyError as exc:
        raise ConfigError(f"missing {exc.args[0]!r}", file=file, key=where) from None
    except ValueError as exc:
        raise ConfigError(str(exc), file=file, key=f"{where}.asset") from None
    if kind not in KINDS:
        raise ConfigError(
            f"kind must be one of {sorted(KINDS)}, got {kind!r}", file=file, key=f"{where}.kind"
        )
    values: dict[str, float | None] = {}
    for key in ("p_nominal_kw", "capacity_kwh", "p_guaranteed_min_kw"):
        v = doc.get(key)
        if v is not None and (
            isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v) or v < 0
        ):
            raise ConfigError(f"must be a finite number >= 0, got {v!r}", file=file, key=f"{where}.{key}")
        values[key] = None if v is None else float(v)
    floor = values["p_guaranteed_min_kw"]
    if floor is None:
        floor = GUARANTEED_MIN_KW if kind in ("ev", "hp") else 0.0
    return AssetRef(
        asset=asset,
        kind=kind,
        p_nominal_kw=values["p_nominal_kw"],
        capacity_kwh=values["capacity_kwh"],
        p_guaranteed_min_kw=floor,
    )


def _site(doc: Any, where: str, file: str, n_region_sites: int | None) -> SiteRef:
    """One `{site, region_site, assets}` entry of a registry YAML, validated."""
    if not isinstance(doc, dict):
        raise ConfigError("a site must be a mapping", file=file, key=where)
    unknown = sorted(set(doc) - SITE_KEYS)
    if unknown:
        reason = unknown_key_reason(unknown[0], SITE_KEYS)
        raise ConfigError(reason, file=file, key=f"{where}.{unknown[0]}")
    try:
        site = validate_id(str(doc["site"]), what="site id")
        region_site = doc["region_site"]
    except KeyError as exc:
        raise ConfigError(f"missing {exc.args[0]!r}", file=file, key=where) from None
    except ValueError as exc:
        raise ConfigError(str(exc), file=file, key=f"{where}.site") from None
    if isinstance(region_site, bool) or not isinstance(region_site, int) or region_site < 0:
        raise ConfigError("must be a household index >= 0", file=file, key=f"{where}.region_site")
    if n_region_sites is not None and region_site >= n_region_sites:
        raise ConfigError(
            f"household {region_site} not in the region ({n_region_sites} households)",
            file=file,
            key=f"{where}.region_site",
        )
    assets = tuple(_asset(a, f"{where}.assets[{j}]", file) for j, a in enumerate(doc.get("assets", [])))
    import_max, export_max = _grid_connection(doc.get("grid_connection"), f"{where}.grid_connection", file)
    return SiteRef(
        site=site, region_site=region_site, assets=assets, import_max_kw=import_max, export_max_kw=export_max
    )


def _grid_connection(doc: Any, where: str, file: str) -> tuple[float | None, float | None]:
    """`grid_connection: {import_max_kw, export_max_kw}` (each optional, kW > 0, as the site YAML's)."""
    if doc is None:
        return None, None
    if not isinstance(doc, dict):
        raise ConfigError("must be a mapping {import_max_kw, export_max_kw}", file=file, key=where)
    unknown = sorted(set(doc) - GRID_CONNECTION_KEYS)
    if unknown:
        raise ConfigError(
            unknown_key_reason(unknown[0], GRID_CONNECTION_KEYS), file=file, key=f"{where}.{unknown[0]}"
        )
    out: list[float | None] = []
    for key in ("import_max_kw", "export_max_kw"):
        v = doc.get(key)
        if v is not None and (
            isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v) or v <= 0
        ):
            raise ConfigError(
                f"must be a finite number of kW > 0, got {v!r}", file=file, key=f"{where}.{key}"
            )
        out.append(None if v is None else float(v))
    return out[0], out[1]


def load_registry(path: Path, *, n_region_sites: int | None = None) -> Registry:
    """A registry YAML, or a manifest.json (then `n_region_sites` places the sites)."""
    if path.suffix == ".json":
        return registry_from_manifest(path, n_region_sites or 319)
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError("file not found", file=str(path)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", file=str(path)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("sites"), list):
        raise ConfigError("expected a mapping with a list `sites`", file=str(path), key="sites")
    unknown_top = sorted(set(doc) - {"sites", "grid_meters"})
    if unknown_top:
        raise ConfigError(
            unknown_key_reason(unknown_top[0], frozenset({"sites", "grid_meters"})),
            file=str(path),
            key=unknown_top[0],
        )
    sites = [_site(s, f"sites[{i}]", str(path), n_region_sites) for i, s in enumerate(doc["sites"])]
    meters = doc.get("grid_meters", [])
    if not isinstance(meters, list):
        raise ConfigError("must be a list of {site, station}", file=str(path), key="grid_meters")
    grid_meters = tuple(_grid_meter(m, f"grid_meters[{i}]", str(path)) for i, m in enumerate(meters))
    try:
        return Registry(sites=tuple(sites), grid_meters=grid_meters)
    except ConfigError as exc:
        raise ConfigError(exc.reason, file=str(path), key=exc.key) from None


def _grid_meter(doc: Any, where: str, file: str, *, extra: bool = False) -> GridMeterRef:
    """One `{site, station}` entry; `extra`: other keys allowed (substations.json lists endpoints)."""
    if not isinstance(doc, dict):
        raise ConfigError("a grid meter must be a mapping {site, station}", file=file, key=where)
    unknown = sorted(set(doc) - METER_KEYS)
    if unknown and not extra:
        raise ConfigError(unknown_key_reason(unknown[0], METER_KEYS), file=file, key=f"{where}.{unknown[0]}")
    for key in ("site", "station"):
        if key not in doc:
            raise ConfigError(f"missing {key!r}", file=file, key=where)
        if not isinstance(doc[key], str) or not doc[key]:
            raise ConfigError(
                f"must be a non-empty string, got {doc[key]!r}", file=file, key=f"{where}.{key}"
            )
    try:
        site = validate_id(doc["site"], what="site id")
    except ValueError as exc:
        raise ConfigError(str(exc), file=file, key=f"{where}.site") from None
    return GridMeterRef(site=site, station=doc["station"])


def _substations_beside(manifest: Path) -> tuple[GridMeterRef, ...]:
    """The grid meters of the `substations.json` beside a manifest.json (none if there is none)."""
    path = manifest.parent / SUBSTATIONS_FILE
    if not path.is_file():
        return ()
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON: {exc}", file=str(path)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("substations"), list):
        raise ConfigError("expected a mapping with a list `substations`", file=str(path), key="substations")
    return tuple(
        _grid_meter(m, f"substations[{i}]", str(path), extra=True) for i, m in enumerate(doc["substations"])
    )


def registry_from_manifest(path: Path, n_region_sites: int, *, seed: int = 0) -> Registry:
    """Sites of a test bed's manifest.json on distinct households chosen with `seed`."""
    if not path.is_file():
        raise ConfigError("file not found", file=str(path))
    entries = Manifest.load(path).sites  # a ConfigError names file, key and reason
    if len(entries) > n_region_sites:
        raise ConfigError(
            f"{len(entries)} sites but the region has {n_region_sites} households", file=str(path)
        )
    rng = np.random.default_rng(seed)
    households = sorted(int(h) for h in rng.choice(n_region_sites, size=len(entries), replace=False))
    sites = []
    for i, (entry, household) in enumerate(zip(entries, households, strict=True)):
        assets = tuple(
            _asset(
                {
                    "asset": a.id,
                    "kind": a.kind,
                    "p_nominal_kw": a.p_nominal_kw,
                    "capacity_kwh": a.capacity_kwh,
                },
                f"sites[{i}].assets[{j}]",
                str(path),
            )
            for j, a in enumerate(entry.assets)
        )
        try:
            site = validate_id(entry.site, what="site id")
        except ValueError as exc:
            raise ConfigError(str(exc), file=str(path), key=f"sites[{i}].site") from None
        sites.append(SiteRef(site=site, region_site=household, assets=assets))
    meters = _substations_beside(path)  # its own errors name substations.json
    try:
        return Registry(sites=tuple(sites), grid_meters=meters)
    except ConfigError as exc:
        blamed = path.parent / SUBSTATIONS_FILE if exc.key == "grid_meters" else path
        raise ConfigError(exc.reason, file=str(blamed), key=exc.key) from None
