"""The edge agent service (work in progress)."""

from __future__ import annotations

from edge_agent.config import SiteConfig


def run_until_signal(config: SiteConfig) -> None:
    """Run the agent until SIGTERM/SIGINT."""
    raise NotImplementedError(config.site)
