"""GridFlex as an OpenADR 3 VEN (docs/openadr.md §7): a utility's events in, DR requests out, reports back.

`config` (the VEN's YAML and its secrets), `mapping` (pure: event → DR requests or a
refusal; DR delivery → report), `clients` (the two HTTP parties: the utility's VTN and the
controller's DR API), `bridge` (the poll loop), `registration` (our VEN object and
resources), `subscription` and `callback` (the VTN's notifications wake the poll),
`service` (all of it in one loop). The public face the command line uses.
"""

from __future__ import annotations

from cloud_controller.openadr.ven.bridge import Bridge, BridgeStats
from cloud_controller.openadr.ven.clients import DrApiClient, VenHttpError, VtnClient
from cloud_controller.openadr.ven.config import (
    ProgramMap,
    VenConfig,
    VenCredentials,
    load_credentials,
    load_operator_token,
    load_ven_config,
)
from cloud_controller.openadr.ven.mapping import MappedRequest, Refusal, delivery_report, event_requests
from cloud_controller.openadr.ven.service import VenService, VenStats

__all__ = [
    "Bridge",
    "BridgeStats",
    "DrApiClient",
    "MappedRequest",
    "ProgramMap",
    "Refusal",
    "VenConfig",
    "VenCredentials",
    "VenHttpError",
    "VenService",
    "VenStats",
    "VtnClient",
    "delivery_report",
    "event_requests",
    "load_credentials",
    "load_operator_token",
    "load_ven_config",
]
