"""edge_agent: the site gateway program (drivers, store-and-forward telemetry, commands, fallback).

Public surface, imported lazily so `gridflex --help` does not load pymodbus/aiomqtt:
`EdgeAgent`, `AgentStats`, `SiteConfig`, `load_config`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocols.lazy import lazy_exports

if TYPE_CHECKING:
    from edge_agent.agent import EdgeAgent
    from edge_agent.config import SiteConfig, load_config
    from edge_agent.health import AgentStats

__all__ = ["AgentStats", "EdgeAgent", "SiteConfig", "load_config"]

_WHERE = {
    "EdgeAgent": "edge_agent.agent",
    "AgentStats": "edge_agent.health",
    "SiteConfig": "edge_agent.config",
    "load_config": "edge_agent.config",
}


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__)
