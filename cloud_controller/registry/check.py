"""The registry checked against what each site reports: missing assets, unregistered points and sites.

A registry written by hand drifts from the buildings it describes (the README's own
example once registered a battery the simulated building did not have, and every
command to it was rejected). Ingest feeds every telemetry sample's point key and time
here with the time it arrived. A registered asset is *missing* once the site's set of
reporting assets has not grown for `grace_s` seconds of arrival time (and
`grace_batches` batches). Arrival time, not sample time: batches are not polls (an agent
replays its backlog in chunks, one device's points in one batch and another's in the
next), a driver can take a minute of wall time to connect (BACnet under load), and under
an accelerated clock a minute of samples passes in a quarter of a second. A point of an
asset the registry does not list is *unregistered*; a site not in the registry at all is *unknown*. Each asset or site is
reported once (the caller logs it and writes a warning event); the planner sends no
command to a missing asset. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from cloud_controller.registry import Registry

__all__ = ["DEFAULT_GRACE_BATCHES", "DEFAULT_GRACE_S", "RegistryCheck", "SiteFindings", "SiteMismatch"]

#: Seconds (arrival time) without a newly reporting asset after which a registered asset
#: that never appeared is called missing: many poll intervals, and longer than a slow
#: driver takes to connect.
DEFAULT_GRACE_S = 120.0
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
    grown_s: float | None = None  # arrival time (monotonic s) at which the reporting assets last grew
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

    def observe(self, site: str, point_keys: Iterable[str], *, now_s: float) -> SiteFindings:
        """What one batch of registered `site` newly shows: its "asset/point" keys, arrived at `now_s` (wall s)."""
        st = self._sites[site]
        st.batches += 1
        seen_unregistered = {k.partition("/")[0] for k in st.unregistered}
        batch_assets: set[str] = set()
        new_points: set[str] = set()
        for key in point_keys:
            asset = key.partition("/")[0]
            batch_assets.add(asset)
            if asset not in st.registered and key not in st.unregistered:
                new_points.add(key)
        if st.grown_s is None or not batch_assets <= st.seen_assets:
            st.grown_s = now_s
        st.unregistered |= new_points
        new_assets = sorted({k.partition("/")[0] for k in new_points} - seen_unregistered)
        st.seen_assets |= batch_assets
        back = sorted(st.missing & batch_assets)
        st.missing -= batch_assets
        new_missing: list[str] = []
        if self._past_grace(st, now_s):
            st.missing = set(st.registered - st.seen_assets)
            new_missing = sorted(st.missing - st.reported_missing)
            st.reported_missing |= st.missing
        points = tuple(sorted(k for k in st.unregistered if k.partition("/")[0] in new_assets))
        return SiteFindings(tuple(new_missing), tuple(new_assets), points, tuple(back))

    def _past_grace(self, st: _SiteState, now_s: float) -> bool:
        if st.batches < self.grace_batches or st.grown_s is None:
            return False
        return now_s - st.grown_s >= self.grace_s

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
