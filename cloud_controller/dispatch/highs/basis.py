"""Reading and setting HiGHS's basis, and moving a multi-period basis with its window."""

from __future__ import annotations

from typing import Any

import highspy
import numpy as np

from cloud_controller.dispatch.highs.crash import BASIS_STATUS
from cloud_controller.dispatch.model.lp import LpIndex
from cloud_controller.dispatch.model.problem import IntArray


def basis_status(h: Any) -> tuple[IntArray, IntArray] | None:
    """HiGHS's current column and row statuses (None without a valid basis)."""
    basis = h.getBasis()
    if not basis.valid:
        return None
    # `.value` rather than int(): the faster read over the hundreds of thousands of columns of an MPC
    col = np.fromiter((v.value for v in basis.col_status), dtype=np.int64, count=int(h.getNumCol()))
    row = np.fromiter((v.value for v in basis.row_status), dtype=np.int64, count=int(h.getNumRow()))
    return col, row


def set_alien_basis(h: Any, col: IntArray, row: IntArray) -> bool:
    """Statuses to HiGHS as an "alien" basis (it completes them where they are not one)."""
    basis = highspy.HighsBasis()
    basis.col_status = [BASIS_STATUS[v] for v in col.tolist()]
    basis.row_status = [BASIS_STATUS[v] for v in row.tolist()]
    basis.alien = True
    basis.valid = True
    return bool(h.setBasis(basis) == highspy.HighsStatus.kOk)


def shifted(ix: LpIndex, horizon: int, col: IntArray, row: IntArray, k: int) -> tuple[IntArray, IntArray]:
    """Statuses of a window that starts `k` periods later.

    Period t takes the old period t + k's, the new tail repeats the old last period. Columns
    and rows outside the index's period families (grid rows added lazily) keep theirs.
    """
    T = horizon
    new_col, new_row = col.copy(), row.copy()
    for name, value in vars(ix).items():
        if not isinstance(value, np.ndarray) or value.ndim == 0 or value.shape[0] != T:
            continue
        if name.startswith("c_"):
            src, dst = col, new_col
        elif name.startswith("r_"):
            src, dst = row, new_row
        else:
            continue
        idx = value.reshape(T, -1)
        ok = idx[0] >= 0  # the same entries exist in every period
        later = idx[k:][:, ok]
        dst[idx[: T - k][:, ok]] = src[later]
        dst[idx[T - k :][:, ok]] = src[idx[T - 1][ok]][None, ...]
    return new_col, new_row
