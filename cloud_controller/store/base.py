"""The store interface the controller codes against: SQLite (one file) and PostgreSQL (shared) satisfy it.

Ingest, the dispatch lease, the planner's history reads, health and the API use only
these methods, so a controller picks its store by `store.kind` and nothing else changes.
The result types (`WriteResult`, `LeaseState`) are shared from `results.py`. `STORE_ERRORS` is what a store raises when it cannot do its job right now
(file locked or unwritable, database unreachable): callers that retry catch exactly it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

from cloud_controller.store.batch import SiteSamples
from cloud_controller.store.buckets import FloatArray
from cloud_controller.store.results import LeaseState, WriteResult
from protocols.assets import PointKey
from protocols.errors import GridflexError
from protocols.messages import Ack, Event, Sample

__all__ = ["STORE_ERRORS", "LeaseState", "Store", "StoreError", "WriteResult"]


class StoreError(GridflexError):
    """The PostgreSQL store could not do a call (unreachable, refused, a failed statement); says which."""


#: What a store raises when it is unavailable: callers that retry (lease, health) catch these.
STORE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, StoreError)


class Store(Protocol):
    """Samples keyed by (site, seq), the per-site watermark, latest values, events, acks, lease, probe."""

    @property
    def path(self) -> Path | str:
        """Where the store is, for messages: the SQLite file, or the DSN (never with a password)."""
        ...

    def write_samples(self, site: str, samples: Sequence[Sample]) -> WriteResult:
        """Insert (a resent seq is a counted duplicate) and advance the watermark in one transaction."""
        ...

    def write_batches(self, batches: Sequence[SiteSamples]) -> list[WriteResult]:
        """Several messages (any sites) in ONE transaction; one result per message, in order.

        What ingest's write-behind queue flushes: one lock turn and one commit for many
        small agent batches. Each site's watermark is advanced once, in the transaction.
        """
        ...

    def raise_floor(self, site: str, seq: int) -> int:
        """The agent dropped everything below `seq`: the watermark becomes at least seq − 1."""
        ...

    def highest_contiguous_seq(self, site: str) -> int:
        """The site's watermark as stored (another worker may have advanced it)."""
        ...

    def latest(self) -> dict[str, dict[str, tuple[datetime, float]]]:
        """Newest good value of every point: site -> "asset/point" -> (ts, value)."""
        ...

    def watermarks(self) -> dict[str, int]:
        """Each site's watermark."""
        ...

    def count_samples(self, site: str | None = None) -> int:
        """Number of stored samples, of one site or of all."""
        ...

    def read_series(
        self, site: str, asset: str, point: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        """Good, non-null values of one point in [start, end), oldest first."""
        ...

    def read_bucket_means(
        self,
        sites: Sequence[str],
        point: PointKey,
        start: datetime,
        end: datetime,
        step_s: float,
        *,
        rollups: bool = True,
    ) -> FloatArray:
        """(len(sites), buckets) mean of one point's good, non-null values per bucket, NaN where none.

        Bucket k is [start + k * step_s, start + (k + 1) * step_s) up to `end`
        (`store/buckets.py`): the settlement's ISP means of a fleet-month in one array.
        ISP-aligned reads come from the ISP rollups kept at write time (`store/rollups.py`);
        `rollups=False` reads the samples (the reference the tests and benchmarks compare).
        """
        ...

    def rebuild_rollups(self) -> int:
        """Rebuild the ISP rollups from the stored samples (what the migration does); rows written."""
        ...

    def read_history(
        self,
        site: str,
        start: datetime,
        end: datetime,
        points: Sequence[PointKey] | None = None,
        *,
        max_rows: int = 200_000,
    ) -> dict[PointKey, list[tuple[datetime, float]]]:
        """Good, non-null values of several points of one site in [start, end), oldest first."""
        ...

    def write_event(self, event: Event) -> None:
        """Store an agent's event."""
        ...

    def write_ack(self, ack: Ack) -> None:
        """Store a command's ack (a repeated ack replaces the earlier one)."""
        ...

    def count_events(self, kind: str | None = None) -> int:
        """Number of stored events, of one kind or of all."""
        ...

    def read_events(
        self,
        *,
        site: str | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        limit: int = 200,
    ) -> list[Event]:
        """The newest events first (at most `limit`)."""
        ...

    def acquire_lease(self, name: str, holder: str, now_s: float, ttl_s: float) -> LeaseState:
        """Take or renew a lease unless another holds it unexpired; the token grows on every change of holder."""
        ...

    def release_lease(self, name: str, holder: str) -> bool:
        """End `holder`'s lease now (the token is kept); False if not held."""
        ...

    def read_lease(self, name: str) -> tuple[str, int, float] | None:
        """(holder, token, expires_at) as stored, or None if never taken."""
        ...

    def claim_period(self, name: str, holder: str, token: int, period_s: float, now_s: float) -> bool:
        """Record that lease `name`'s holder dispatches the period starting at `period_s` (POSIX s).

        True only if `holder` holds the lease with `token`, unexpired at `now_s`, and no
        period at or after this one was claimed before (by anyone): a successor that takes
        over within a period its predecessor dispatched skips it, so no period is sent twice.
        """
        ...

    def probe_write(self, name: str, now_s: float) -> None:
        """A real write the readiness check makes: raises if the store is not writable."""
        ...

    def replace_envelopes(self, rows: Sequence[tuple[float, str]]) -> None:
        """Store the operator's grid envelopes ((until as epoch s, JSON) each), replacing the last set."""
        ...

    def read_envelopes(self, now_s: float) -> list[str]:
        """The stored envelopes (JSON) not expired by `now_s`, in the order given; expired ones are deleted."""
        ...

    def close(self) -> None:
        """Release the connection or file."""
        ...
