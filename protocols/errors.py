"""One exception root for GridFlex; every package derives its errors from it."""

from __future__ import annotations

__all__ = ["ConfigError", "ContractError", "GridflexError"]


class GridflexError(Exception):
    """Root of every error GridFlex raises on purpose."""


class ContractError(GridflexError):
    """A message or topic broke the edge/cloud contract; `reason` says how, readably."""

    def __init__(self, reason: str, *, topic: str | None = None) -> None:
        self.reason = reason
        self.topic = topic
        super().__init__(f"{reason} (topic {topic!r})" if topic else reason)


class ConfigError(GridflexError):
    """A configuration file is wrong: names the file, the key and the reason."""

    def __init__(self, reason: str, *, file: str | None = None, key: str | None = None) -> None:
        self.reason = reason
        self.file = file
        self.key = key
        where = ":".join(part for part in (file, key) if part)
        super().__init__(f"{where}: {reason}" if where else reason)
