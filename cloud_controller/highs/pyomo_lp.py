"""A pyomo model into a HiGHS instance through an LP file with symbolic names.

Why a file and not pyomo's solver interface: the caller keeps the `highspy.Highs` (warm
re-solves, its own options, row and column edits), and pyomo's symbol map ties every
pyomo component back to its HiGHS column or row by name.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

__all__ = ["load_pyomo_model"]


def load_pyomo_model(model: Any, h: Any) -> Any:
    """Write `model` as an LP file with symbolic labels, read it into `h`; return pyomo's symbol map."""
    fd, path = tempfile.mkstemp(suffix=".lp")
    os.close(fd)
    try:
        _, sid = model.write(path, io_options={"symbolic_solver_labels": True})
        h.readModel(path)
    finally:
        os.unlink(path)
    return model.solutions.symbol_map[sid]
