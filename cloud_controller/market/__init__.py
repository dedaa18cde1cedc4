"""The local flexibility market (seed 002, numbers from USEF/UFTP, NODES and GOPACS): pure core.

`products` (requests, offers, options, gate closure), `clearing` (welfare MILP with grid
rows, pay-as-bid or pay-as-clear, shortfall reported) and `settlement` (baselines,
delivered, deficiency, penalty, net). The shell (API, MQTT topics, UFTP) builds on these.
Also the shell's steps a harness runs on its own clock (the demo's market on the twin,
gridflex/loop/twin_market.py): the DSO's request from a forecast (`request_action`), the
forecast's grid view (`ViewBuilder`, `GridView`, from a `LatestForecast`) and the book's
refusal (`Refused`); and the book over a market store with the endpoints' settlement
metering (`Book`, `MarketConfig`, `MarketStore`, `store_metering`, `ArrayMetering`), for the
settlement benchmark.

Names load on first use (protocols/lazy.py): the controller's config imports
`market.config`, and loading a config must not pay for pandapower and pyomo.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocols.lazy import lazy_exports

if TYPE_CHECKING:
    from cloud_controller.forecast.background import LatestForecast
    from cloud_controller.market.auto_request import request_action
    from cloud_controller.market.batch import MonthSettlement, isp_means, settle_month
    from cloud_controller.market.batch_orders import ArrayMetering
    from cloud_controller.market.book import Book, Refused
    from cloud_controller.market.clearing import (
        Clearing,
        ClearingOptions,
        GridRow,
        Order,
        clear,
        headroom_at_risk,
    )
    from cloud_controller.market.config import MarketConfig
    from cloud_controller.market.forecast_hook import ViewBuilder
    from cloud_controller.market.grid_view import GridView
    from cloud_controller.market.metering import metered, metered_month_kw, store_metering
    from cloud_controller.market.products import (
        DEFAULT_GATE_CLOSURE_S,
        ISP_S,
        FlexOffer,
        FlexRequest,
        MarketRefusal,
        OfferOption,
        Product,
        check_activation_factor,
        check_gate,
    )
    from cloud_controller.market.settlement import (
        BaselineAccuracy,
        OrderSettlement,
        baseline_accuracy,
        nodes_baseline,
        settle,
        working_days_before,
        x_of_y_baseline,
    )
    from cloud_controller.market.store import MarketStore

__all__ = [
    "DEFAULT_GATE_CLOSURE_S",
    "ISP_S",
    "ArrayMetering",
    "BaselineAccuracy",
    "Book",
    "Clearing",
    "ClearingOptions",
    "FlexOffer",
    "FlexRequest",
    "GridRow",
    "GridView",
    "LatestForecast",
    "MarketConfig",
    "MarketRefusal",
    "MarketStore",
    "MonthSettlement",
    "OfferOption",
    "Order",
    "OrderSettlement",
    "Product",
    "Refused",
    "ViewBuilder",
    "baseline_accuracy",
    "check_activation_factor",
    "check_gate",
    "clear",
    "headroom_at_risk",
    "isp_means",
    "metered",
    "metered_month_kw",
    "nodes_baseline",
    "request_action",
    "settle",
    "settle_month",
    "store_metering",
    "working_days_before",
    "x_of_y_baseline",
]

_WHERE = {
    "ArrayMetering": "cloud_controller.market.batch_orders",
    "BaselineAccuracy": "cloud_controller.market.settlement",
    "Book": "cloud_controller.market.book",
    "Clearing": "cloud_controller.market.clearing",
    "ClearingOptions": "cloud_controller.market.clearing",
    "DEFAULT_GATE_CLOSURE_S": "cloud_controller.market.products",
    "FlexOffer": "cloud_controller.market.products",
    "FlexRequest": "cloud_controller.market.products",
    "GridRow": "cloud_controller.market.clearing",
    "GridView": "cloud_controller.market.grid_view",
    "ISP_S": "cloud_controller.market.products",
    "LatestForecast": "cloud_controller.forecast.background",
    "MarketConfig": "cloud_controller.market.config",
    "MarketRefusal": "cloud_controller.market.products",
    "MarketStore": "cloud_controller.market.store",
    "MonthSettlement": "cloud_controller.market.batch",
    "OfferOption": "cloud_controller.market.products",
    "Order": "cloud_controller.market.clearing",
    "OrderSettlement": "cloud_controller.market.settlement",
    "Product": "cloud_controller.market.products",
    "Refused": "cloud_controller.market.book",
    "ViewBuilder": "cloud_controller.market.forecast_hook",
    "baseline_accuracy": "cloud_controller.market.settlement",
    "check_activation_factor": "cloud_controller.market.products",
    "check_gate": "cloud_controller.market.products",
    "clear": "cloud_controller.market.clearing",
    "headroom_at_risk": "cloud_controller.market.clearing",
    "isp_means": "cloud_controller.market.batch",
    "metered": "cloud_controller.market.metering",
    "metered_month_kw": "cloud_controller.market.metering",
    "nodes_baseline": "cloud_controller.market.settlement",
    "request_action": "cloud_controller.market.auto_request",
    "settle": "cloud_controller.market.settlement",
    "settle_month": "cloud_controller.market.batch",
    "store_metering": "cloud_controller.market.metering",
    "working_days_before": "cloud_controller.market.settlement",
    "x_of_y_baseline": "cloud_controller.market.settlement",
}

__getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__)
