"""Shared fixtures: a real Mosquitto on a free loopback port (plain and with ACL), a SimClock.

Mosquitto is required, not optional: `make test` installs it. A missing broker is a
set-up error and fails loudly rather than skipping the tests that prove the contract.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from gridflex.ops.broker import MosquittoBroker, site_acl
from protocols.clock import SimClock


@pytest.fixture
def mosquitto() -> Iterator[MosquittoBroker]:
    """A plain (anonymous) Mosquitto on 127.0.0.1:<free port>, stopped after the test."""
    broker = MosquittoBroker().start()
    try:
        yield broker
    finally:
        broker.close()


@dataclass(frozen=True)
class AclBroker:
    """A Mosquitto with a password file and per-site ACL, and the credentials it accepts."""

    broker: MosquittoBroker
    passwords: dict[str, str]  # username -> password; site users are named after their site

    @property
    def port(self) -> int:
        return self.broker.port


@pytest.fixture
def mosquitto_acl() -> Iterator[AclBroker]:
    """Mosquitto with users `cloud`, `a`, `b` (random passwords) and `site_acl()`."""
    passwords = {name: secrets.token_urlsafe(12) for name in ("cloud", "a", "b")}
    broker = MosquittoBroker(users=passwords, acl=site_acl()).start()
    try:
        yield AclBroker(broker=broker, passwords=passwords)
    finally:
        broker.close()


@pytest.fixture
def sim_clock() -> SimClock:
    """A manually stepped clock starting 2030-01-15 00:00 UTC."""
    return SimClock(datetime(2030, 1, 15, tzinfo=UTC))
