"""The ingest bench at a tiny size on PostgreSQL: figures right and every role's CPU measured.

Why: `gridflex bench ingest` gives the ceiling's why by each process's CPU seconds
(publisher, broker, workers, the PostgreSQL backends); these checks keep those figures
real: every role is measured, the ones that do the work used CPU, the watermarks are right.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridflex.bench.ingest import IngestStore, bench_ingest_workers
from gridflex.bench.proc import RoleCpu, cpu_s, descendants, rss_mb
from gridflex.ops.broker import MosquittoBroker
from gridflex.ops.postgres import LoopbackPostgres


@pytest.fixture(scope="module")
def pg() -> Iterator[LoopbackPostgres]:
    with LoopbackPostgres() as server:
        yield server


def _child(code: str) -> subprocess.Popen[str]:
    """A Python child that prints "ready", waits for a line on stdin, runs `code`, prints "done"."""
    script = (
        f"print('ready', flush=True)\ninput()\n{code}\nprint('done', flush=True)\nimport time; time.sleep(60)"
    )
    return subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def _say(p: subprocess.Popen[str], line: str) -> str:
    """Send `p` a line; its answer."""
    assert p.stdin is not None and p.stdout is not None
    p.stdin.write(line + "\n")
    p.stdin.flush()
    return p.stdout.readline().strip()


def test_role_cpu_counts_a_busy_child_and_not_an_idle_one() -> None:
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass"
    busy, idle = _child(burn), _child("pass")
    try:
        for p in (busy, idle):
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        cpu = RoleCpu({"bench": os.getpid(), "busy": busy.pid, "idle": idle.pid})
        cpu.start()
        assert _say(busy, "go") == "done"  # it burnt 0.5 s of CPU after `start`
        used = cpu.stop()
        assert set(used) == {"bench", "busy", "idle"}
        assert 0.45 <= used["busy"] < 5.0
        assert used["idle"] < 0.05
        assert os.getpid() in descendants(os.getppid())
        assert rss_mb(busy.pid) > 1 and cpu_s(busy.pid) >= 0.45
    finally:
        for p in (busy, idle):
            p.kill()
            p.wait(5)
    assert cpu_s(busy.pid) == 0.0 and rss_mb(busy.pid) == 0.0  # gone: reads as 0


@pytest.mark.integration
@pytest.mark.slow  # a spawned worker and publisher import the controller: 20-120 s on a loaded machine
def test_ingest_bench_on_postgres_measures_every_role(
    mosquitto: MosquittoBroker, pg: LoopbackPostgres, tmp_path: Path
) -> None:
    store = IngestStore("postgres", pg.dsn(pg.fresh_schema()), str(pg.password_file), batch_messages=50)
    assert mosquitto.pid is not None and pg.pid is not None
    fig = bench_ingest_workers(
        1,
        port=mosquitto.port,
        workdir=tmp_path,
        n_sites=4,
        n_batches=5,
        size=100,
        store=store,
        watch={"mosquitto": mosquitto.pid, "postgres": pg.pid},
    )
    assert fig.samples == 4 * 5 * 100 and fig.watermarks_ok
    assert fig.per_worker == (2000,)
    assert set(fig.cpu_s) == {"publisher", "bench", "ingest-0", "mosquitto", "postgres"}
    assert fig.cpu_s["ingest-0"] > 0 and fig.cpu_s["postgres"] > 0
    # nothing in the window can take more CPU than the wall time on this machine's cores
    assert all(0 <= c <= fig.seconds * (os.cpu_count() or 1) + 0.05 for c in fig.cpu_s.values())
