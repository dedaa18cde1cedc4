"""A real PostgreSQL (Debian's `postgresql`) on a free loopback port, once per test session.

`initdb` into a fresh folder under /tmp, then `postgres` itself as our child (its PID is
the postmaster's, so it is stopped by that PID: SIGINT is Postgres's fast shutdown,
bounded, then SIGKILL). Root cannot run Postgres, so as root both run as the `postgres`
user through `setpriv`, with the folder owned by it. Password authentication on TCP
(scram-sha-256) with the password in a file, as the controller is configured. Each test
gets its own schema (`search_path` in its DSN), which is much cheaper than a database.
`make test` installs `postgresql` with apt-get; its absence fails, it does not skip.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from gridflex.ops.broker import free_port

PG_ROOT = Path("/usr/lib/postgresql")
USER = "gridflex"
STOP_S = 15.0


def _bin_dir() -> Path:
    found = sorted(PG_ROOT.glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if not found:
        pytest.fail("PostgreSQL is not installed (make test installs `postgresql` with apt-get)")
    return found[-1].parent


@dataclass(frozen=True)
class PgServer:
    """A running server: where it listens, who may log in, and the password file."""

    port: int
    password_file: Path
    password: str

    def dsn(self, schema: str | None = None) -> str:
        """A DSN without the password (the controller reads that from password_file)."""
        base = f"host=127.0.0.1 port={self.port} user={USER} dbname=postgres"
        return base + (f" options='-c search_path={schema}'" if schema else "")

    def fresh_schema(self) -> str:
        """A new, empty schema: one test's store."""
        name = "t_" + secrets.token_hex(6)
        with psycopg.connect(self.dsn(), password=self.password, autocommit=True) as db:
            db.execute(f"CREATE SCHEMA {name}")
        return name


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """Start PostgreSQL once for the session; stop it by PID with a bound; remove its folder."""
    bin_dir = _bin_dir()
    root = Path(tempfile.mkdtemp(prefix="gridflex-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        as_user = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"]
    password = secrets.token_urlsafe(16)
    pw_file = root / "password"
    pw_file.write_text(password + "\n")
    (root / "sock").mkdir()
    if as_user:
        for path in (root, pw_file, root / "sock"):
            shutil.chown(path, "postgres", "postgres")
    data = root / "data"
    init = subprocess.run(
        [
            *as_user,
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            USER,
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={pw_file}",
            "--no-sync",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"initdb failed ({init.returncode}): {init.stderr[-2000:]}")
    port = free_port()
    log_file = (root / "server.log").open("w")
    # fsync off: a test server that is thrown away; durability is Postgres's, not ours to test
    proc = subprocess.Popen(
        [
            *as_user,
            str(bin_dir / "postgres"),
            "-D",
            str(data),
            "-c",
            "listen_addresses=127.0.0.1",
            "-p",
            str(port),
            "-k",
            str(root / "sock"),
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    server = PgServer(port=port, password_file=pw_file, password=password)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(server.dsn(), password=password, connect_timeout=2):
                    break
            except psycopg.OperationalError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"postgres did not answer on 127.0.0.1:{port}: {(root / 'server.log').read_text()[-2000:]}"
                    )
                time.sleep(0.05)
        yield server
    finally:
        proc.send_signal(signal.SIGINT)  # fast shutdown: ends sessions, checkpoints, exits
        try:
            proc.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log_file.close()
        shutil.rmtree(root, ignore_errors=True)
