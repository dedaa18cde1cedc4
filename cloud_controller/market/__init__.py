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
"""

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
