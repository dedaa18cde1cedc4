"""One ingest worker for the two-process test: writes its share of batches into a shared PostgresStore.

Run as `python -m tests.integration.store.pg_writer DSN PASSWORD_FILE WORKER N_WORKERS`.
It connects (and migrates), prints `ready`, waits for `go` on stdin so both workers
start together, writes, and prints one JSON line of what its writes reported.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cloud_controller.store.postgres import PostgresStore
from protocols.messages import Sample

SITES = ("s1", "s2", "s3")
N_BATCHES = 16  # per site
BATCH = 10  # samples per batch
T0 = datetime(2030, 1, 15, tzinfo=UTC)
#: Each worker reports its own point: on one shared point the `latest` row's lock would
#: serialize the workers and hide a missing watermark lock.
POINTS = ("p_kw", "q_kvar")


def batch(index: int, point: str = "p_kw") -> list[Sample]:
    """Batch `index` of a site: seqs index*BATCH … index*BATCH + BATCH − 1, value = seq."""
    return [
        Sample(seq=q, asset="meter", point=point, value=float(q), unit="kW", ts=T0 + timedelta(seconds=q))
        for q in range(index * BATCH, (index + 1) * BATCH)
    ]


def plan(worker: int, n_workers: int) -> list[tuple[str, int]]:
    """(site, batch) this worker writes: every n-th batch, interleaved with the others', plus every 4th batch

    twice over (every worker writes those: one stores them, the others count duplicates).
    """
    mine = [(site, b) for b in range(N_BATCHES) for site in SITES if b % n_workers == worker or b % 4 == 0]
    return mine


def main() -> None:
    dsn, pw_file, worker, n_workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    store = PostgresStore(dsn, password=Path(pw_file).read_text().strip())
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("no go")
    inserted = duplicates = 0
    for site, b in plan(worker, n_workers):
        result = store.write_samples(site, batch(b, POINTS[worker % len(POINTS)]))
        inserted += result.inserted
        duplicates += result.duplicates
    store.close()
    print(json.dumps({"inserted": inserted, "duplicates": duplicates}), flush=True)


if __name__ == "__main__":
    main()
