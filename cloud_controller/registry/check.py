"""The registry checked against what each site reports: missing assets, unregistered points and sites.

A registry written by hand drifts from the buildings it describes (the README's own
example once registered a battery the simulated building did not have, and every
command to it was rejected). Ingest feeds every telemetry sample's point key and time
here. A registered asset is *missing* once the site's samples span `grace_s` of its own
time (and `grace_batches` batches) without one of that asset: batches are not polls (an
agent replays its backlog in chunks, one device's points may come in one batch and
another's in the next), but every polled point appears within any window longer than
the agent's poll interval. A point of an asset the registry does not list is
*unregistered*; a site not in the registry at all is *unknown*. Each asset or site is
reported once (the caller logs it and writes a warning event); the planner sends no
command to a missing asset. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from cloud_controller.registry import Registry

__all__ = ["DEFAULT_GRACE_BATCHES", "DEFAULT_GRACE_S", "RegistryCheck", "SiteFindings", "SiteMismatch"]

#: Sample time a site's telemetry must span before a registered asset that never appeared
#: in it is called missing: many poll intervals (the test bed polls every 1-5 s).
DEFAULT_GRACE_S = 60.0
#: ... and telemetry batches it must have sent (a first batch can be partial).
DEFAULT_GRACE_BATCHES = 3


@dataclass(frozen=True)
class SiteMismatch:
    """One site's registry mismatch as the API shows it (sorted, JSON-ready)."""

    missing_assets: list[str]
    unregistered_points: list[str]

    @property
    def any(self) -> bool:
        """True when the registry and the site's reports disagree."""
        return bool(self.missing_assets or self.unregistered_points)


@dataclass(frozen=True)
class SiteFindings:
    """What one batch newly revealed (each asset or point is reported once)."""

    missing_assets: tuple[str, ...] = ()
    #: Assets not in the registry that reported for the first time (with their points so far).
    unregistered_assets: tuple[str, ...] = ()
    unregistered_points: tuple[str, ...] = ()
    reappeared_assets: tuple[str, ...] = ()

    @property
    def any(self) -> bool:
        """True if there is something new to report."""
        return bool(self.missing_assets or self.unregistered_assets or self.reappeared_assets)


@dataclass
class _SiteState:
    registered: frozenset[str]
    batches: int = 0
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    seen_assets: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    reported_missing: set[str] = field(default_factory=set)
    unregistered: set[str] = field(default_factory=set)


class RegistryCheck:
    """Tracks, per registered site, which registered assets report and which reported points are unknown."""

    def __init__(
        self,
        registry: Registry,
        *,
        grace_s: float = DEFAULT_GRACE_S,
        grace_batches: int = DEFAULT_GRACE_BATCHES,
    ) -> None:
        if grace_s < 0 or grace_batches < 1:
            raise ValueError("grace_s must be >= 0 and grace_batches >= 1")
        self.grace_s = grace_s
        self.grace_batches = grace_batches
        self._sites = {
            s.site: _SiteState(registered=frozenset(a.asset for a in s.assets)) for s in registry.sites
        }
        #: Unregistered site id -> messages received from it.
        self.unregistered_sites: dict[str, int] = {}

    def unknown_site(self, site: str) -> bool:
        """Count a message of an unregistered site; True the first time that site is seen."""
        first = site not in self.unregistered_sites
        self.unregistered_sites[site] = self.unregistered_sites.get(site, 0) + 1
        return first

    def observe(self, site: str, samples: Iterable[tuple[str, datetime]]) -> SiteFindings:
        """Take one telemetry batch ("asset/point" key, sample time) of registered `site`; what it newly shows."""
        st = self._sites[site]
        st.batches += 1
        seen_unregistered = {k.partition("/")[0] for k in st.unregistered}
        batch_assets: set[str] = set()
        new_points: set[str] = set()
        for key, ts in samples:
            batch_assets.add(key.partition("/")[0])
            if key.partition("/")[0] not in st.registered and key not in st.unregistered:
                new_points.add(key)
            st.first_ts = ts if st.first_ts is None or ts < st.first_ts else st.first_ts
            st.last_ts = ts if st.last_ts is None or ts > st.last_ts else st.last_ts
        st.unregistered |= new_points
        new_assets = sorted({k.partition("/")[0] for k in new_points} - seen_unregistered)
        st.seen_assets |= batch_assets
        back = sorted(st.missing & batch_assets)
        st.missing -= batch_assets
        new_missing: list[str] = []
        if self._past_grace(st):
            st.missing = set(st.registered - st.seen_assets)
            new_missing = sorted(st.missing - st.reported_missing)
            st.reported_missing |= st.missing
        points = tuple(sorted(k for k in st.unregistered if k.partition("/")[0] in new_assets))
        return SiteFindings(tuple(new_missing), tuple(new_assets), points, tuple(back))

    def _past_grace(self, st: _SiteState) -> bool:
        if st.batches < self.grace_batches or st.first_ts is None or st.last_ts is None:
            return False
        return (st.last_ts - st.first_ts).total_seconds() >= self.grace_s

    def missing_assets(self, site: str) -> frozenset[str]:
        """Registered assets of `site` that have not reported within the grace (none for unknown sites)."""
        st = self._sites.get(site)
        return frozenset(st.missing) if st is not None else frozenset()

    def mismatch(self, site: str) -> SiteMismatch:
        """The API's view of `site`'s mismatch (empty lists when the registry matches)."""
        st = self._sites.get(site)
        if st is None:
            return SiteMismatch([], [])
        return SiteMismatch(sorted(st.missing), sorted(st.unregistered))
