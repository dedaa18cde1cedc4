"""What every scenario gets: its working directory, the mode (short or full), a shared stack, a seed."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from gridflex.chaos.stack import TelemetryStack

__all__ = ["Ctx"]


@dataclass
class Ctx:
    """The chaos run's context; `stack()` starts the shared telemetry stack on first use."""

    workdir: Path
    short: bool
    seed: int = 17
    _stack: TelemetryStack | None = field(default=None, repr=False)

    def rng(self, name: str) -> random.Random:
        """A random generator per scenario: a rerun with the same seed fuzzes the same inputs."""
        return random.Random(f"{self.seed}:{name}")

    async def stack(self) -> TelemetryStack:
        """The shared broker + sim + ingest-only cloud (3 sites), started once."""
        if self._stack is None:
            stack = TelemetryStack(self.workdir / "stack", sites=3)
            self._stack = await stack.__aenter__()
        return self._stack

    async def close(self) -> None:
        """Stop the shared stack's processes (bounded: `children.stop` each)."""
        if self._stack is not None:
            await self._stack.__aexit__(None, None, None)
            self._stack = None
