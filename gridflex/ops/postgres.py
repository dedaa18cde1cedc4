"""A throwaway PostgreSQL on a loopback port (Debian's `postgresql`): for the store's tests and benchmark.

`initdb` into a fresh folder, then `postgres` itself as our child, so its PID is the
postmaster's and it is stopped by that PID (SIGINT = Postgres's fast shutdown, bounded,
then SIGKILL). Postgres refuses to run as root, so as root both run as the `postgres`
user through `setpriv` (which execs: no wrapper process in between), the folder owned
by it. TCP logins need a password (scram-sha-256), kept in a file, as the controller is
configured in production. fsync is off: the server is thrown away afterwards.
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
from pathlib import Path
from types import TracebackType

from gridflex.ops.broker import free_port
from protocols.errors import GridflexError

__all__ = ["LoopbackPostgres", "PostgresServerError", "postgres_bin_dir"]

PG_ROOT = Path("/usr/lib/postgresql")
USER = "gridflex"
START_S = 30.0
STOP_S = 15.0


class PostgresServerError(GridflexError):
    """The loopback PostgreSQL could not be set up or started; says why (with the log's tail)."""


def postgres_bin_dir(root: Path = PG_ROOT) -> Path:
    """The newest installed server's bin folder (/usr/lib/postgresql/<version>/bin)."""
    found = sorted(root.glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise PostgresServerError(
            f"PostgreSQL is not installed (no {root}/*/bin/postgres; `make test` installs `postgresql`)"
        )
    return found[-1].parent


class LoopbackPostgres:
    """`with LoopbackPostgres() as pg:` a server on 127.0.0.1:`pg.port`; `pg.dsn()` has no password."""

    def __init__(self) -> None:
        self.bin_dir = postgres_bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="gridflex-pg-"))
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self.password_file = self.root / "password"
        self.log_path = self.root / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def dsn(self, schema: str | None = None) -> str:
        """A libpq DSN for user `gridflex` on database `postgres` (optionally with a search_path)."""
        base = f"host=127.0.0.1 port={self.port} user={USER} dbname=postgres"
        return base + (f" options='-c search_path={schema}'" if schema else "")

    def _as_postgres(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        pw = pwd.getpwnam("postgres")
        return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"]

    def start(self) -> LoopbackPostgres:
        """initdb, start, and wait until a password login works (at most START_S); cleans up on failure."""
        try:
            return self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> LoopbackPostgres:
        import psycopg  # the store's driver; only who starts a server needs it

        as_user = self._as_postgres()
        self.password_file.write_text(self.password + "\n")
        sock = self.root / "sock"
        sock.mkdir()
        if as_user:
            for path in (self.root, self.password_file, sock):
                shutil.chown(path, "postgres", "postgres")
        data = self.root / "data"
        init = subprocess.run(
            [
                *as_user,
                str(self.bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                USER,
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                f"--pwfile={self.password_file}",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if init.returncode != 0:
            raise PostgresServerError(f"initdb failed ({init.returncode}): {init.stderr[-2000:]}")
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                [
                    *as_user,
                    str(self.bin_dir / "postgres"),
                    "-D",
                    str(data),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-p",
                    str(self.port),
                    "-k",
                    str(sock),
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_S
        while True:
            try:
                with psycopg.connect(self.dsn(), password=self.password, connect_timeout=2):
                    return self
            except psycopg.OperationalError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    tail = self.log_path.read_text(errors="replace")[-2000:]
                    raise PostgresServerError(
                        f"postgres did not answer on 127.0.0.1:{self.port}: {tail}"
                    ) from None
                time.sleep(0.05)

    def fresh_schema(self) -> str:
        """A new, empty schema: one test's (or one run's) store, far cheaper than a database."""
        import psycopg

        name = "t_" + secrets.token_hex(6)
        with psycopg.connect(self.dsn(), password=self.password, autocommit=True) as db:
            db.execute(f"CREATE SCHEMA {name}")
        return name

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while started."""
        return self._proc.pid if self._proc is not None else None

    def close(self) -> None:
        """Fast shutdown by PID (bounded, then SIGKILL), then remove the folder."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=STOP_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LoopbackPostgres:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
