"""The one error the flexibility models raise: an input outside its physical range."""

from __future__ import annotations

from protocols.errors import GridflexError

__all__ = ["FlexModelError", "require"]


class FlexModelError(GridflexError):
    """A model input is out of range; the message names the parameter and the reason."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"{name}: {reason}")


def require(ok: bool, name: str, reason: str) -> None:
    """Raise `FlexModelError(name, reason)` unless `ok` (one line per validated input)."""
    if not ok:
        raise FlexModelError(name, reason)
