"""Make BAC0's debug notes cheap: its `log()` walks the whole call stack on every call.

BAC0 (2026.7.25) `note_and_log.log()` calls `inspect.stack()` and `inspect.getmodule()`
for every DEBUG note, before the logger decides whether to emit it. `inspect.stack()`
reads the source of every frame, so each BACnet read costs ~30 ms of CPU: 20 agents
polling a BMS each saturated a core (profiled: 75 % of the process in `inspect`). The
note only needs the caller's module name, which the caller's frame already holds; this
swaps the module's `inspect` for a shim that returns exactly that, without source I/O.
"""

from __future__ import annotations

import sys
import types
from typing import Any

__all__ = ["make_bac0_logging_cheap"]


class _CallerOnly(types.SimpleNamespace):
    """What `notes.log` uses of `inspect`: `stack()[1][0]` (caller frame) and `getmodule(frame)`."""

    @staticmethod
    def stack(context: int = 1) -> list[tuple[Any, ...]]:
        del context
        # frame 0: this function, 1: BAC0's log(), 2: whoever called log()
        return [(sys._getframe(1),), (sys._getframe(2),)]

    @staticmethod
    def getmodule(frame: Any) -> types.ModuleType | None:
        return sys.modules.get(frame.f_globals.get("__name__", ""))


def make_bac0_logging_cheap() -> bool:
    """Patch BAC0's notes module once; False when BAC0's layout changed (then nothing is touched)."""
    import inspect

    from BAC0.core.utils import notes

    current = getattr(notes, "inspect", None)
    if isinstance(current, _CallerOnly):
        return True
    if current is not inspect:
        return False
    notes.inspect = _CallerOnly()
    return True
