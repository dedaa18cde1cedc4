"""The docker compose test bed, run for real: daemon, base image, build, up, checks, restart, teardown.

`make testbed` and `tests/integration/deploy/test_compose_testbed.py` both run `run_bed`.
What it needs from the machine and why:

- a Docker daemon: the one `DOCKER_HOST` (or the default socket) answers, else Debian's
  `dockerd` started here with `--bridge=none --iptables=false` (no bridge, no firewall
  rules: every container shares the host's loopback, so nothing leaves 127.0.0.1), its
  data in `GRIDFLEX_DOCKER_ROOT` (default /tmp/gridflex-docker, kept between runs so the
  base image and the build's layers are reused), and stopped by its PID at the end;
- a Debian bookworm base image: `GRIDFLEX_BASE` if set, else `gridflex-base:bookworm`,
  made once from Debian packages alone (`debootstrap --variant=minbase` + `docker import`)
  where Docker Hub is not reachable. The machine's local CAs
  (/usr/local/share/ca-certificates) go into it, so apt and PyPI through a TLS-inspecting
  proxy verify in the build as they do on the host;
- compose: v2 (`docker compose`) where installed, else v1.29 (`docker-compose`, Debian's);
  the file needs nothing newer than v1.29.

The checks read PostgreSQL through `psql` inside its container (no password leaves the
`config` volume): every site's telemetry stored, commands acked, and after a restart of
the broker container, every site's telemetry stored again and every container still up.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from protocols.errors import GridflexError

__all__ = ["BedError", "BedReport", "compose_command", "docker_daemon", "missing_tools", "run_bed"]

REPO = Path(__file__).resolve().parents[2]
DOCKER_ROOT = Path(os.environ.get("GRIDFLEX_DOCKER_ROOT", "/tmp/gridflex-docker"))
DEPLOY = REPO / "deploy"
BASE_TAG = "gridflex-base:bookworm"
PROJECT = "gridflex-bed"
PG_PORT = 15432  # deploy/docker-compose.host.yml
SERVICES = ("mosquitto", "postgres", "testbed", "dispatcher", "ingest-a", "ingest-b")
DAEMON_START_S = 30.0
DAEMON_STOP_S = 20.0
BUILD_S = 1800.0
UP_S = 300.0
DOWN_S = 120.0


class BedError(GridflexError):
    """A step of the test bed failed; says which and with what output."""


@dataclass
class BedReport:
    """What the run found and how long each step took (wall seconds)."""

    sites: int
    steps_s: dict[str, float] = field(default_factory=dict)
    samples_by_site: dict[str, int] = field(default_factory=dict)
    acks_by_status: dict[str, int] = field(default_factory=dict)
    sites_after_restart: int = 0
    restart_counts: dict[str, int] = field(default_factory=dict)
    compose: str = ""

    def lines(self) -> list[str]:
        """The report as printable lines."""
        out = [f"compose: {self.compose}; {self.sites} sites"]
        out += [f"  {name}: {s:.1f} s" for name, s in self.steps_s.items()]
        out.append(
            f"  telemetry stored for {len(self.samples_by_site)} sites, {sum(self.samples_by_site.values())} samples"
        )
        out.append(f"  acks by status: {self.acks_by_status}")
        out.append(f"  after the broker restart: telemetry stored again for {self.sites_after_restart} sites")
        return out


def missing_tools() -> list[str]:
    """What this machine lacks to run the bed (empty: it can run)."""
    missing = [tool for tool in ("docker",) if shutil.which(tool) is None]
    if not _daemon_answers(os.environ.get("DOCKER_HOST")):
        missing += [tool for tool in ("dockerd",) if shutil.which(tool) is None]
        if os.geteuid() != 0:
            missing.append("root (to start dockerd)")
    if compose_command() is None:
        missing.append("docker compose v2 or docker-compose v1.29")
    if "GRIDFLEX_BASE" not in os.environ and shutil.which("debootstrap") is None:
        missing.append("debootstrap (or GRIDFLEX_BASE naming a Debian bookworm image the daemon has)")
    return missing


def _run(argv: list[str], *, env: dict[str, str] | None = None, timeout_s: float, what: str) -> str:
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BedError(f"{what}: no answer within {timeout_s:.0f} s ({' '.join(argv)})") from exc
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-3000:]
        raise BedError(f"{what} failed (exit {done.returncode}): {' '.join(argv)}\n{tail}")
    return done.stdout


def _daemon_answers(host: str | None) -> bool:
    if shutil.which("docker") is None:
        return False
    env = {**os.environ, **({"DOCKER_HOST": host} if host else {})}
    try:
        done = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            env=env,
            capture_output=True,
            timeout=10,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def compose_command(env: dict[str, str] | None = None) -> list[str] | None:
    """`docker compose` (v2) if the plugin answers, else `docker-compose` (v1), else None."""
    try:
        v2 = subprocess.run(
            ["docker", "compose", "version"], env=env, capture_output=True, timeout=10, check=False
        )
        if v2.returncode == 0:
            return ["docker", "compose"]
    except (OSError, subprocess.TimeoutExpired):
        pass
    return ["docker-compose"] if shutil.which("docker-compose") else None


@contextmanager
def docker_daemon(work: Path = DOCKER_ROOT) -> Iterator[str | None]:
    """The DOCKER_HOST to use: the running daemon's (None = the default), else our own dockerd in `work`."""
    if _daemon_answers(os.environ.get("DOCKER_HOST")):
        yield os.environ.get("DOCKER_HOST")
        return
    work.mkdir(parents=True, exist_ok=True)
    host = f"unix://{work}/docker.sock"
    log = (work / "dockerd.log").open("wb")
    argv = [
        "dockerd",
        "--bridge=none",
        "--iptables=false",
        "--data-root",
        str(work / "data"),
        "--exec-root",
        str(work / "exec"),
        "--pidfile",
        str(work / "dockerd.pid"),
        "-H",
        host,
    ]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + DAEMON_START_S
        while not _daemon_answers(host):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise BedError(f"dockerd did not start (see {work / 'dockerd.log'})")
            time.sleep(0.5)
        yield host
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=DAEMON_STOP_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=DAEMON_STOP_S)
        log.close()
        # dockerd 20.10 leaves its default network namespace mounted under the exec root
        netns = work / "exec" / "netns" / "default"
        if netns.exists():
            subprocess.run(["umount", str(netns)], capture_output=True, timeout=10, check=False)


def ensure_base(env: dict[str, str], work: Path) -> float:
    """Import `gridflex-base:bookworm` from debootstrap unless the daemon has it; seconds spent."""
    started = time.monotonic()
    present = subprocess.run(
        ["docker", "image", "inspect", BASE_TAG], env=env, capture_output=True, timeout=30, check=False
    )
    if present.returncode == 0:
        return 0.0
    if shutil.which("debootstrap") is None:
        raise BedError(f"no {BASE_TAG} image and no debootstrap to make one (apt-get install debootstrap)")
    rootfs = work / "rootfs"
    _run(
        ["debootstrap", "--variant=minbase", "bookworm", str(rootfs), "http://deb.debian.org/debian"],
        timeout_s=1200,
        what="debootstrap",
    )
    cas = rootfs / "usr/local/share/ca-certificates"
    cas.mkdir(parents=True, exist_ok=True)
    for crt in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        shutil.copy(crt, cas / crt.name)
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    try:
        done = subprocess.run(
            ["docker", "import", "-", BASE_TAG],
            env=env,
            stdin=tar.stdout,
            capture_output=True,
            timeout=600,
            check=False,
        )
    finally:
        if tar.stdout is not None:
            tar.stdout.close()
        tar.wait(timeout=60)
    shutil.rmtree(rootfs, ignore_errors=True)
    if done.returncode != 0:
        raise BedError(f"docker import failed: {done.stderr.decode()[-2000:]}")
    return time.monotonic() - started


class Bed:
    """One compose project of the bed: its commands, its SQL checks and its teardown."""

    def __init__(self, compose: list[str], env: dict[str, str]) -> None:
        self.compose = compose
        self.env = env
        self.files = ["-f", str(DEPLOY / "docker-compose.yml"), "-f", str(DEPLOY / "docker-compose.host.yml")]

    def run(self, *args: str, timeout_s: float, what: str) -> str:
        """A compose command on this project."""
        return _run(
            [*self.compose, "-p", PROJECT, *self.files, *args], env=self.env, timeout_s=timeout_s, what=what
        )

    def sql(self, query: str) -> list[list[str]]:
        """Rows of `query`, read by psql inside the postgres container (peer auth on its socket)."""
        out = self.run(
            "exec",
            "-T",
            "postgres",
            "psql",
            "-h",
            "/tmp",
            "-p",
            str(PG_PORT),
            "-d",
            "gridflex",
            "-AtF",
            "\t",
            "-c",
            query,
            timeout_s=30,
            what="psql",
        )
        return [line.split("\t") for line in out.splitlines() if line]

    def containers(self) -> dict[str, dict[str, object]]:
        """Per service: its container's state (running, restart count)."""
        ids = self.run("ps", "-q", timeout_s=30, what="compose ps").split()
        if not ids:
            return {}
        info = json.loads(
            _run(["docker", "inspect", *ids], env=self.env, timeout_s=30, what="docker inspect")
        )
        return {
            c["Config"]["Labels"]["com.docker.compose.service"]: {
                "running": c["State"]["Running"],
                "restarts": c["RestartCount"],
            }
            for c in info
        }

    def down(self) -> None:
        """Containers, network and volumes removed, bounded."""
        self.run("down", "-v", "--timeout", "20", timeout_s=DOWN_S, what="compose down")


def wait_for(check: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 3.0) -> float:
    """Seconds until `check()` held; a BedError naming `what` after `timeout_s`."""
    started = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - started
        except BedError:
            pass  # e.g. postgres not yet accepting: the deadline decides
        if time.monotonic() - started > timeout_s:
            raise BedError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(poll_s)


def run_bed(sites: int = 3, *, keep: bool = False, log: Callable[[str], None] = print) -> BedReport:
    """Build, bring up, check, restart the broker, check again, tear down; the report."""
    report = BedReport(sites=sites)
    with tempfile.TemporaryDirectory(prefix="gridflex-bed-") as tmp, docker_daemon() as host:
        env = {**os.environ, **({"DOCKER_HOST": host} if host else {})}
        compose = compose_command(env)
        if compose is None:
            raise BedError("neither `docker compose` (v2) nor `docker-compose` (v1.29) is installed")
        report.compose = " ".join(compose)
        if "GRIDFLEX_BASE" not in env:
            report.steps_s["base image (debootstrap + import)"] = ensure_base(env, Path(tmp))
            env["GRIDFLEX_BASE"] = BASE_TAG
        env["GRIDFLEX_SITES"] = str(sites)
        bed = Bed(compose, env)
        started = time.monotonic()
        bed.run("build", timeout_s=BUILD_S, what="compose build")
        report.steps_s["build (cached layers reused)"] = time.monotonic() - started
        try:
            _exercise(bed, report, log)
        finally:
            if keep:
                log("bed kept running (--keep): stop it with compose down -v")
            else:
                started = time.monotonic()
                bed.down()
                report.steps_s["down -v"] = time.monotonic() - started
    return report


def _exercise(bed: Bed, report: BedReport, log: Callable[[str], None]) -> None:
    started = time.monotonic()
    bed.run("up", "-d", timeout_s=UP_S, what="compose up")
    report.steps_s["up -d"] = time.monotonic() - started
    log("bed up; waiting for telemetry in PostgreSQL")

    def samples() -> bool:
        rows = bed.sql("SELECT site, count(*) FROM samples GROUP BY site")
        report.samples_by_site = {site: int(n) for site, n in rows}
        return len(report.samples_by_site) == report.sites

    report.steps_s["until every site's telemetry stored"] = wait_for(
        samples, 180, "telemetry of every site stored"
    )

    def acked() -> bool:
        rows = bed.sql("SELECT status, count(*) FROM acks GROUP BY status")
        report.acks_by_status = {status: int(n) for status, n in rows}
        return sum(report.acks_by_status.values()) > 0

    report.steps_s["until commands acked"] = wait_for(acked, 240, "a command acked")
    log("telemetry stored and commands acked; restarting the broker")
    started = time.monotonic()
    bed.run("restart", "--timeout", "10", "mosquitto", timeout_s=60, what="restart mosquitto")
    since = bed.sql("SELECT extract(epoch FROM now())")[0][0]  # samples taken after the broker is back

    def again() -> bool:
        rows = bed.sql(f"SELECT count(DISTINCT site) FROM samples WHERE ts > to_timestamp({since})")
        report.sites_after_restart = int(rows[0][0])
        return report.sites_after_restart == report.sites

    report.steps_s["broker restart until every site stored again"] = (
        time.monotonic()
        - started
        + wait_for(again, 180, "telemetry of every site stored after the broker restart")
    )
    state = bed.containers()
    report.restart_counts = {name: int(str(s["restarts"])) for name, s in state.items()}
    down = [name for name in SERVICES if not state.get(name, {}).get("running")]
    if down:
        raise BedError(f"not running after the broker restart: {down}")


def main(argv: list[str] | None = None) -> int:
    """`python -m gridflex.ops.compose_bed [--sites N] [--keep]` (`make testbed`): the report, exit 1 on a failed step."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sites", type=int, default=3, help="simulated buildings (default 3)")
    parser.add_argument("--keep", action="store_true", help="leave the bed running (no down -v)")
    args = parser.parse_args(argv)
    missing = missing_tools()
    if missing:
        print(f"cannot run the docker test bed here: missing {', '.join(missing)}")
        return 1
    started = time.monotonic()
    try:
        report = run_bed(args.sites, keep=args.keep)
    except BedError as exc:
        print(f"test bed failed: {exc}")
        return 1
    print("\n".join(report.lines()))
    print(f"total {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
