"""Liveness and readiness: `/livez` (the process and its event loop answer) and `/readyz` (it can work).

Why split: `/healthz` said `ok` while the broker was unreachable. A liveness probe that
failed on a lost broker would restart a controller that only has to wait for the broker;
a readiness probe must fail then, so traffic and operators see it. Readiness checks:

- `broker`: the MQTT session is connected (a standby dispatcher does not connect: failing);
- `store`: a real write into the store (`probes` table) within STORE_PROBE_S;
- `plan` (a dispatching holder): the last plan is at most STALE_PERIODS control periods old
  (or, before the first plan, the dispatcher started at most that long ago);
- `lease` (a dispatcher): held, or "standby: lease held by X until T" (failing).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from cloud_controller.store.base import STORE_ERRORS
from cloud_controller.web.views import STALE_PERIODS

if TYPE_CHECKING:
    from cloud_controller.service import CloudController

__all__ = ["STORE_PROBE_S", "Check", "health_routes", "liveness", "readiness"]

STORE_PROBE_S = 2.0  # a store write slower than this counts as not writable


@dataclass(frozen=True)
class Check:
    """One readiness check: passed or not, and why, in words an operator can act on."""

    name: str
    ok: bool
    detail: str


def liveness(controller: CloudController) -> dict[str, Any]:
    """The process runs and its event loop answered this request (nothing else is checked)."""
    return {"status": "alive", "role": controller.role}


async def _store_check(controller: CloudController) -> Check:
    now_s = controller.clock.now().timestamp()
    try:
        async with asyncio.timeout(STORE_PROBE_S):
            await asyncio.to_thread(controller.store.probe_write, "readyz", now_s)
    except TimeoutError:
        return Check("store", False, f"a write to {controller.store.path} took over {STORE_PROBE_S:.0f} s")
    except STORE_ERRORS as exc:
        return Check("store", False, f"cannot write {controller.store.path}: {exc}")
    return Check("store", True, f"writable ({controller.store.path})")


def _plan_check(controller: CloudController) -> Check:
    period_s = controller.config.control.period_s
    limit_s = STALE_PERIODS * period_s
    now = controller.clock.now()
    at = controller.stats.last_plan_at
    if at is not None:
        age_s = (now - at).total_seconds()
        return Check("plan", age_s <= limit_s, f"last plan {age_s:.0f} s ago (limit {limit_s:.0f} s)")
    lease = controller.lease
    since = lease.acquired_at if lease is not None else None
    started_s = (now - since).total_seconds() if since is not None else 0.0
    return Check(
        "plan",
        started_s <= limit_s,
        f"no plan yet, dispatching for {started_s:.0f} s (limit {limit_s:.0f} s)",
    )


async def readiness(controller: CloudController) -> list[Check]:
    """Every readiness check of `controller`'s role (see the module's docstring)."""
    lease = controller.lease
    standby = lease is not None and lease.status.state != "held"
    broker = controller.config.broker
    if controller.session.connected.is_set():
        checks = [Check("broker", True, f"connected to {broker.host}:{broker.port}")]
    elif standby:
        checks = [Check("broker", False, "not connecting while on standby (the lease is another's)")]
    else:
        checks = [Check("broker", False, f"not connected to {broker.host}:{broker.port}")]
    checks.append(await _store_check(controller))
    if lease is not None:
        checks.append(Check("lease", not standby, lease.status.describe()))
        if not standby:
            checks.append(_plan_check(controller))
    return checks


def health_routes(app: FastAPI, controller: CloudController) -> None:
    """`/livez`, `/readyz` and the deprecated `/healthz` (an alias of liveness); never behind a token."""

    @app.get("/livez", tags=["health"])
    async def livez() -> dict[str, Any]:
        """Liveness: 200 while the process and its event loop answer (async: a blocked loop cannot reply)."""
        return liveness(controller)

    @app.get("/readyz", tags=["health"], responses={503: {"description": "not ready; `failing` names why"}})
    async def readyz() -> JSONResponse:
        """Readiness: broker connected, store writable (a real write), plan fresh, lease held.

        200 when every check passes, else 503; `failing` lists the failing checks' names and
        `checks` says why each passed or failed (e.g. "standby: lease held by X until T").
        """
        checks = await readiness(controller)
        failing = [c.name for c in checks if not c.ok]
        body = {
            "status": "not ready" if failing else "ready",
            "role": controller.role,
            "failing": failing,
            "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in checks},
        }
        return JSONResponse(body, status_code=503 if failing else 200)

    @app.get("/healthz", tags=["health"], deprecated=True)
    async def healthz() -> dict[str, Any]:
        """Deprecated alias of **liveness** (`/livez`), with its old fields; use `/livez` and `/readyz`.

        It stays a liveness answer (200 while the process runs) because deployments probe it
        as liveness: making it readiness would restart a standby dispatcher or a controller
        waiting for its broker.
        """
        return {
            **liveness(controller),
            "status": "ok",
            "deprecated": "use /livez (liveness) and /readyz (readiness)",
            "mqtt_connected": controller.session.connected.is_set(),
            "last_plan_at": controller.stats.last_plan_at,
        }
