"""cloud_controller: ingest, store, forecast, grid-aware dispatch, commands and the HTTP API.

The public face, what the composition root (`gridflex`) builds the service from: the
service and its config, the registry, the live planner and its types, the region and the
stores (time series; the record stores' back ends and the market's book over them, for
`gridflex bench records`). Each name is imported on first use, so `import cloud_controller`
does not load pandapower, pyomo or aiomqtt (`gridflex --help` stays fast). The offline study and the
dispatch engine have their own faces, `cloud_controller.study` and `cloud_controller.dispatch`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocols.lazy import lazy_exports

if TYPE_CHECKING:
    from cloud_controller.api import create_app
    from cloud_controller.config import CloudConfig, load_cloud_config
    from cloud_controller.forecast.probabilistic import ProbabilisticCongestion
    from cloud_controller.forecast.quality_backtest import BacktestConfig, run_backtest
    from cloud_controller.forecast.quality_report import write_quality_outputs
    from cloud_controller.forecast.result import ForecastOptions
    from cloud_controller.grid import Region, build_schutterwald_region
    from cloud_controller.live.commands import CommandBuilder
    from cloud_controller.live.planner import MpcPlanner, build_planner
    from cloud_controller.live.types import (
        AssetRef,
        GridMeterRef,
        History,
        Plan,
        Planner,
        SiteRef,
        SiteSnapshot,
    )
    from cloud_controller.market.book import Book
    from cloud_controller.market.config import MarketConfig
    from cloud_controller.market.store import MarketStore
    from cloud_controller.registry import Registry, load_registry, registry_from_manifest
    from cloud_controller.service import CloudController
    from cloud_controller.service_setup import signing_keys
    from cloud_controller.store import SqliteStore
    from cloud_controller.store.postgres import PostgresStore
    from cloud_controller.store.records import SqliteRecords
    from cloud_controller.store.records_pg import PostgresRecords

__all__ = [
    "AssetRef",
    "BacktestConfig",
    "Book",
    "CloudConfig",
    "CloudController",
    "CommandBuilder",
    "ForecastOptions",
    "GridMeterRef",
    "History",
    "MarketConfig",
    "MarketStore",
    "MpcPlanner",
    "Plan",
    "Planner",
    "PostgresRecords",
    "PostgresStore",
    "ProbabilisticCongestion",
    "Region",
    "Registry",
    "SiteRef",
    "SiteSnapshot",
    "SqliteRecords",
    "SqliteStore",
    "build_planner",
    "build_schutterwald_region",
    "create_app",
    "load_cloud_config",
    "load_registry",
    "registry_from_manifest",
    "run_backtest",
    "signing_keys",
    "write_quality_outputs",
]

_WHERE = {
    "AssetRef": "cloud_controller.live.types",
    "BacktestConfig": "cloud_controller.forecast.quality_backtest",
    "Book": "cloud_controller.market.book",
    "CloudConfig": "cloud_controller.config",
    "CloudController": "cloud_controller.service",
    "CommandBuilder": "cloud_controller.live.commands",
    "ForecastOptions": "cloud_controller.forecast.result",
    "GridMeterRef": "cloud_controller.live.types",
    "History": "cloud_controller.live.types",
    "MarketConfig": "cloud_controller.market.config",
    "MarketStore": "cloud_controller.market.store",
    "MpcPlanner": "cloud_controller.live.planner",
    "Plan": "cloud_controller.live.types",
    "Planner": "cloud_controller.live.types",
    "PostgresRecords": "cloud_controller.store.records_pg",
    "PostgresStore": "cloud_controller.store.postgres",
    "ProbabilisticCongestion": "cloud_controller.forecast.probabilistic",
    "Region": "cloud_controller.grid",
    "Registry": "cloud_controller.registry",
    "SiteRef": "cloud_controller.live.types",
    "SiteSnapshot": "cloud_controller.live.types",
    "SqliteRecords": "cloud_controller.store.records",
    "SqliteStore": "cloud_controller.store",
    "signing_keys": "cloud_controller.service_setup",
    "build_planner": "cloud_controller.live.planner",
    "build_schutterwald_region": "cloud_controller.grid",
    "create_app": "cloud_controller.api",
    "load_cloud_config": "cloud_controller.config",
    "load_registry": "cloud_controller.registry",
    "registry_from_manifest": "cloud_controller.registry",
    "run_backtest": "cloud_controller.forecast.quality_backtest",
    "write_quality_outputs": "cloud_controller.forecast.quality_report",
}


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__)
