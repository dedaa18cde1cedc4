"""HiGHS's thread count: one per process, fixed by the first engine that builds an LP."""

from __future__ import annotations

import warnings

_THREADS_IN_USE: list[int] = []  # HiGHS's thread count in this process, once an LP is built


def process_threads(wanted: int) -> int:
    """The thread count to give HiGHS: the first engine's, for every engine of the process.

    Why: HiGHS starts one global scheduler per process with the first instance's thread
    count, and a later instance asking for another count fails to run ("Not Set"; found by
    a review with a 1-thread and a 2-thread engine in one process). The count only changes
    HiGHS's internal parallelism, so later engines take the first count and say so.
    """
    if not _THREADS_IN_USE:
        _THREADS_IN_USE.append(wanted)
    elif wanted != _THREADS_IN_USE[0]:
        warnings.warn(
            f"HiGHS already runs with {_THREADS_IN_USE[0]} thread(s) in this process; "
            f"this engine uses that instead of {wanted}",
            RuntimeWarning,
            stacklevel=3,
        )
    return _THREADS_IN_USE[0]
