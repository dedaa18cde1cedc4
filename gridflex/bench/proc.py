"""CPU seconds and RSS of processes (and their children) from Linux /proc, for the multi-process benches.

Why: on this shared machine a bench's wall time mostly says how much CPU the other work
left; each role's CPU seconds (publisher, broker, workers, PostgreSQL backends) say which
one would limit it on cores of its own. Read from /proc so no extra dependency is needed;
a process that is gone reads as 0 (its last figures are lost, the caller says so).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["RoleCpu", "cpu_s", "descendants", "rss_mb"]


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of `pid` (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def rss_mb(pid: int) -> float:
    """Resident set size of `pid` in MiB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def descendants(pid: int) -> list[int]:
    """`pid` and every live process below it (PostgreSQL: the postmaster and its backends)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


class RoleCpu:
    """CPU seconds per role between `start()` and `stop()`; a role is one PID or a PID with its children.

    A child that started during the window counts from 0; one that ended during it is
    missing (PostgreSQL backends live as long as their connection, so none end here).
    """

    def __init__(self, roles: Mapping[str, int], *, with_children: frozenset[str] = frozenset()) -> None:
        self._roles = dict(roles)
        self._tree = with_children
        self._t0: dict[int, float] = {}

    def _pids(self, role: str) -> list[int]:
        pid = self._roles[role]
        return descendants(pid) if role in self._tree else [pid]

    def start(self) -> None:
        """Take every role's CPU seconds now."""
        self._t0 = {p: cpu_s(p) for role in self._roles for p in self._pids(role)}

    def stop(self) -> dict[str, float]:
        """CPU seconds each role used since `start()`."""
        return {
            role: sum(max(0.0, cpu_s(p) - self._t0.get(p, 0.0)) for p in self._pids(role))
            for role in self._roles
        }
