"""A `highspy.Highs` that starts silent: no banner on stdout, no solver log.

HiGHS 1.16 prints its copyright banner to the process's stdout (C level, so Python's
redirects do not see it) the first time a `Highs` object is constructed, before any
option can be set; it landed in the middle of the study's progress bar and the
controller's log. The first construction therefore runs with file descriptor 1 pointed
at /dev/null (and the C buffer flushed before it is restored); every instance gets
`output_flag` off.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from typing import Any

import highspy

from cloud_controller.highs.threads import process_threads

__all__ = ["quiet_highs"]

_lock = threading.Lock()
_bannered = False


def quiet_highs() -> Any:
    """A new `highspy.Highs()`: `output_flag` off, the process's thread count, the one-time banner to /dev/null."""
    global _bannered
    with _lock:
        if _bannered:
            h = highspy.Highs()  # type: ignore[no-untyped-call]
        else:
            h = _construct_muted()
            _bannered = True
    h.setOptionValue("output_flag", False)
    # HiGHS runs one scheduler per process: every instance takes the process's thread count
    # (threads.py), or one made with HiGHS's default would make a later engine end "Not Set".
    h.setOptionValue("threads", process_threads(1))
    return h


def _construct_muted() -> Any:
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError, AttributeError):  # no usable fd 1 (embedded, closed): just build it
        return highspy.Highs()  # type: ignore[no-untyped-call]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        h = highspy.Highs()  # type: ignore[no-untyped-call]
        ctypes.CDLL(None).fflush(None)  # the banner out of libc's buffer, into /dev/null
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
    return h
