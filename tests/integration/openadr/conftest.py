"""Fixtures of the VEN tests: controllers with site a's snapshot, and the ElaadNL BL, closed after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from cloud_controller.config import CloudConfig
from cloud_controller.live.types import SiteSnapshot
from cloud_controller.registry import Registry
from cloud_controller.service import CloudController
from protocols.clock import Clock, RealClock
from tests.integration.openadr.ven_setup import Party
from tests.integration.openadr.vtn_server import close_controller

BASELINE_KW = 50.0  # site a's snapshot at selection: the DR baseline (its meter reads 35 kW: 15 kW delivered)


@pytest.fixture
def bridge_controller() -> Iterator[Callable[..., CloudController]]:
    """`make(cfg, clock=RealClock())`: a controller with no registered sites and site a online at 50 kW.

    Not run (no broker): the test serves its app; its stores are closed after the test.
    """
    made: list[CloudController] = []

    def make(cfg: CloudConfig, clock: Clock | None = None) -> CloudController:
        ctl = CloudController(cfg, Registry(sites=()), clock=clock or RealClock())
        ctl.snapshots["a"] = SiteSnapshot(site="a", mode="online", p_net_kw=BASELINE_KW)
        made.append(ctl)
        return ctl

    yield make
    for ctl in made:
        close_controller(ctl)


@pytest.fixture
def bl_party() -> Iterator[Callable[[str, dict[str, tuple[str, str]]], Party]]:
    """`start(vtn_url, creds)`: ElaadNL's BL in its 3.12 venv, logged in with the VTN's `bl` client; quit after the test."""
    started: list[Party] = []

    def start(vtn_url: str, creds: dict[str, tuple[str, str]]) -> Party:
        party = Party({"vtn_url": vtn_url, "bl_id": creds["bl"][0], "bl_secret": creds["bl"][1]})
        started.append(party)
        return party

    yield start
    for party in started:
        party.close()
