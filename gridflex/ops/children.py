"""Child processes that die with their parent, and a stop that always ends within a bound.

Why: `gridflex demo` killed by SIGTERM (or SIGKILL, or a crash) used to leave its
Mosquitto running, orphaned, holding its port. Every child that product code starts goes
through `spawn` (or `spawn_async`), which on Linux gives it two things:

- `prctl(PR_SET_PDEATHSIG, SIGTERM)`, set in the child between fork and exec, so the
  kernel signals the child when its parent dies, however it dies (SIGKILL included).
  Caveat: the "parent" the kernel watches is the *thread* that forked, not the process.
  A child spawned from a worker thread (`asyncio.to_thread`) is signalled when that thread
  exits; the default executor's threads live until the event loop closes, so that is at
  the end of `asyncio.run`, but do not spawn from a short-lived `threading.Thread`. The
  setting survives `execve` (except of set-uid binaries) and is not inherited by the
  child's own children: those need their own.
- its own process group (`start_new_session`), so a terminal's Ctrl-C does not reach it
  twice and `stop` can signal the whole group (a child's helpers with it).

`stop` sends SIGTERM to the group, waits, then SIGKILL, and reaps: it returns within
`term_s + kill_s` whatever the child does. Signals go to the group id we created (equal to
the child's PID), never to a name.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = ["PR_SET_PDEATHSIG", "pdeathsig_preexec", "spawn", "spawn_async", "stop", "stop_async"]

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

_Stream = int | IO[Any] | None


def _libc_prctl() -> Callable[..., int] | None:
    """The C library's `prctl`, resolved before any fork (a lookup in the child could take a lock)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn: Callable[..., int] = libc.prctl
    except (OSError, AttributeError):  # pragma: no cover - every glibc/musl has it
        return None
    return fn


_PRCTL = _libc_prctl()


def pdeathsig_preexec(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` that asks the kernel to send `sig` to the child when its parent thread exits.

    None off Linux. The parent's PID is taken now: if the parent died between fork and the
    prctl call, the child signals itself (the kernel would not, the parent being gone already).
    """
    prctl = _PRCTL
    if prctl is None:
        return None
    parent = os.getpid()
    signum = int(sig)

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signum)

    return preexec


def spawn(
    args: Sequence[str | Path],
    *,
    stdin: _Stream = subprocess.DEVNULL,
    stdout: _Stream = None,
    stderr: _Stream = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """`subprocess.Popen` of `args` in its own process group, signalled when its parent dies."""
    return subprocess.Popen(
        [str(a) for a in args],
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        env=env,
        cwd=cwd,
        start_new_session=True,
        preexec_fn=pdeathsig_preexec(),  # noqa: PLW1509 (resolved before fork; only prctl runs in the child)
    )


async def spawn_async(
    *args: str | Path,
    stdin: _Stream = subprocess.DEVNULL,
    stdout: _Stream = None,
    stderr: _Stream = None,
    env: dict[str, str] | None = None,
) -> asyncio.subprocess.Process:
    """`asyncio.create_subprocess_exec` with the same guarantees as `spawn`."""
    return await asyncio.create_subprocess_exec(
        *(str(a) for a in args),
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        env=env,
        start_new_session=True,
        preexec_fn=pdeathsig_preexec(),  # as in spawn
    )


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group we created for `pid` (its id is the PID), or the PID alone."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def stop(proc: subprocess.Popen[bytes], *, term_s: float = 5.0, kill_s: float = 5.0) -> int | None:
    """SIGTERM the child's group, wait `term_s`, then SIGKILL and wait `kill_s`; the exit code.

    None only if the child survived SIGKILL for `kill_s` (a process stuck in the kernel):
    logged, and the call still returns within its bound.
    """
    if proc.poll() is not None:
        return proc.returncode
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(timeout=term_s)
    except subprocess.TimeoutExpired:
        log.warning("pid %s ignored SIGTERM for %.1f s: SIGKILL", proc.pid, term_s)
    _signal_group(proc.pid, signal.SIGKILL)
    try:
        return proc.wait(timeout=kill_s)
    except subprocess.TimeoutExpired:
        log.error("pid %s survived SIGKILL for %.1f s", proc.pid, kill_s)
        return None


async def stop_async(
    proc: asyncio.subprocess.Process, *, term_s: float = 5.0, kill_s: float = 5.0
) -> int | None:
    """`stop` for a child of `spawn_async`, under `asyncio.timeout` at each step."""
    if proc.returncode is not None:
        return proc.returncode
    _signal_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(term_s):
            return await proc.wait()
    log.warning("pid %s ignored SIGTERM for %.1f s: SIGKILL", proc.pid, term_s)
    _signal_group(proc.pid, signal.SIGKILL)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(kill_s):
            return await proc.wait()
    log.error("pid %s survived SIGKILL for %.1f s", proc.pid, kill_s)
    return None
