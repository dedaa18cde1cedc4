"""pandapower's import-time and per-load notices that are not ours to act on, dropped at their loggers.

pandapower 3.5 logs "Failed to import plotly" (INFO; plotly 7 is not the version it
probes for, and we draw with plotly ourselves) and, on every power flow it runs while
loading a bundled network, "numba cannot be imported ... install numba" (WARNING; we
never ask it for numba: the power flows that matter run in power-grid-model). Both came
out on every start of the controller and the study. Only these two messages are
dropped, by a filter on the one logger each is logged on: every other pandapower
warning still reaches the handlers.
"""

from __future__ import annotations

import logging

__all__ = ["quiet_pandapower"]

#: (logger, the start of the message that is dropped there)
_NOTICES = (
    ("pandapower.plotting.plotly.draw_layers", "Failed to import plotly"),
    ("pandapower.auxiliary", "numba cannot be imported"),
)


class _DropNotice(logging.Filter):
    """Drops records whose message starts with one given text; passes everything else."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def quiet_pandapower() -> None:
    """Install the filters (idempotent); call before pandapower is imported or a network loaded."""
    for name, prefix in _NOTICES:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNotice) and f.prefix == prefix for f in logger.filters):
            logger.addFilter(_DropNotice(prefix))
