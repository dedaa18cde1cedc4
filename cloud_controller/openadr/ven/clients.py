"""The VEN's two HTTP parties: the utility's VTN (OpenADR 3.1, OAuth2) and the controller's DR API.

Why our own small httpx client and not ElaadNL's `openadr3-client`: that library needs
Python ≥ 3.12 and the project runs on 3.11 (docs/openadr.md §5); the VEN needs six calls
(token discovery, token, programs, events, create and update a report), and the
library stays the *other* party in the tests — its BL client writes the events this
client reads, and reads back the reports it posts. Every failure is a `VenHttpError`
naming the call, the status and the server's detail; a 401 on a call fetches a new token
once (an expired or rotated one), never in a loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from cloud_controller.openadr.ven.config import VenCredentials
from protocols.clock import Clock
from protocols.errors import GridflexError
from protocols.messages import DRRequest

__all__ = ["DrApiClient", "Submitted", "VenHttpError", "VtnClient"]

PAGE = 50  # the spec's largest page


class VenHttpError(GridflexError):
    """A call to the VTN or the DR API failed: which call, its HTTP status (0: no answer), why."""

    def __init__(self, call: str, status: int, detail: str) -> None:
        self.call, self.status, self.detail = call, status, detail
        super().__init__(f"{call}: {status or 'no answer'}: {detail[:300]}")


async def _send(http: httpx.AsyncClient, call: str, method: str, url: str, **kw: Any) -> httpx.Response:
    try:
        return await http.request(method, url, **kw)
    except httpx.HTTPError as exc:
        raise VenHttpError(call, 0, f"{type(exc).__name__}: {exc}") from exc


class VtnClient:
    """A VEN's view of a VTN: programmes, events, its own reports; a bearer token kept until it expires."""

    def __init__(
        self, http: httpx.AsyncClient, base_url: str, creds: VenCredentials, *, clock: Clock
    ) -> None:
        self.http, self.base, self.creds, self.clock = http, base_url.rstrip("/"), creds, clock
        self._token: str | None = None
        self._expires_at = 0.0
        self.tokens_fetched = 0

    async def _token_url(self) -> str:
        """3.1 discovery (`GET /auth/server`), else the spec's default `{base}/token`."""
        r = await _send(self.http, "GET /auth/server", "GET", f"{self.base}/auth/server")
        if r.status_code == 200:
            url = r.json().get("tokenURL")
            if isinstance(url, str) and url:
                return url
        return f"{self.base}/token"

    async def token(self, *, fresh: bool = False) -> str:
        """A bearer token (client credentials grant, id and secret as HTTP Basic, as the ElaadNL client sends)."""
        if not fresh and self._token is not None and self.clock.monotonic() < self._expires_at:
            return self._token
        r = await _send(
            self.http,
            "POST /token",
            "POST",
            await self._token_url(),
            data={"grant_type": "client_credentials"},
            auth=(self.creds.client_id, self.creds.secret.get_secret_value()),
        )
        if r.status_code != 200:
            raise VenHttpError("POST /token", r.status_code, r.text)
        body = r.json()
        self._token = str(body["access_token"])
        # renew a minute early (or at half-life for short tokens): never present an expired one
        ttl = float(body.get("expires_in", 3600))
        self._expires_at = self.clock.monotonic() + max(1.0, min(ttl - 60.0, ttl / 2))
        self.tokens_fetched += 1
        return self._token

    async def _call(self, method: str, path: str, **kw: Any) -> Any:
        call = f"{method} {path}"
        for attempt in (0, 1):
            headers = {"Authorization": f"Bearer {await self.token(fresh=attempt == 1)}"}
            r = await _send(self.http, call, method, f"{self.base}{path}", headers=headers, **kw)
            if r.status_code == 401 and attempt == 0:
                continue
            if r.status_code >= 400:
                raise VenHttpError(call, r.status_code, r.text)
            return r.json()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _all(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = await self._call("GET", path, params={**params, "skip": str(len(out)), "limit": str(PAGE)})
            if not isinstance(page, list):
                raise VenHttpError(f"GET {path}", 200, f"expected a list, got {type(page).__name__}")
            out += page
            if len(page) < PAGE:
                return out

    async def programs(self) -> list[dict[str, Any]]:
        """Every programme the VTN shows us."""
        return await self._all("/programs", {})

    async def events(self, program_id: str) -> list[dict[str, Any]]:
        """Every event of one programme."""
        return await self._all("/events", {"programID": program_id})

    async def create_report(self, report: dict[str, Any]) -> dict[str, Any]:
        """POST /reports; the stored report (server-set id, clientID)."""
        return dict(await self._call("POST", "/reports", json=report))

    async def update_report(self, report_id: str, report: dict[str, Any]) -> dict[str, Any]:
        """PUT /reports/{id}: the same report with more intervals in."""
        return dict(await self._call("PUT", f"/reports/{report_id}", json=report))

    # -- registration and subscriptions (registration.py, subscription.py) ----------

    async def search(self, kind: str, params: dict[str, str]) -> list[dict[str, Any]]:
        """Every `kind` object (vens, resources, subscriptions) matching the query that we may see."""
        return await self._all(f"/{kind}", params)

    async def create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /{kind}; the object as stored (server-set id)."""
        return dict(await self._call("POST", f"/{kind}", json=body))

    async def update(self, kind: str, object_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT /{kind}/{id}."""
        return dict(await self._call("PUT", f"/{kind}/{object_id}", json=body))

    async def delete(self, kind: str, object_id: str) -> bool:
        """DELETE /{kind}/{id}; False when it was gone already (404)."""
        try:
            await self._call("DELETE", f"/{kind}/{object_id}")
        except VenHttpError as exc:
            if exc.status == 404:
                return False
            raise
        return True


@dataclass(frozen=True)
class Submitted:
    """What the DR API said to a request: `selected`/`partial` (201), `known` (409), `refused` (422, why)."""

    status: str
    detail: Any = None


class DrApiClient:
    """The controller's `/dr/requests` with the operator token."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, operator_token: str) -> None:
        self.http, self.base = http, base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {operator_token}"}

    async def submit(self, request: DRRequest) -> Submitted:
        """POST /dr/requests; a 409 (already there, e.g. after a restart without state) is `known`."""
        r = await _send(
            self.http,
            "POST /dr/requests",
            "POST",
            f"{self.base}/dr/requests",
            content=request.model_dump_json(),
            headers={**self._headers, "Content-Type": "application/json"},
        )
        if r.status_code == 201:
            return Submitted(str(r.json()["status"]))
        if r.status_code == 409:
            return Submitted("known", r.json().get("detail"))
        if r.status_code == 422:
            return Submitted("refused", r.json().get("detail"))
        raise VenHttpError("POST /dr/requests", r.status_code, r.text)

    async def report(self, request_id: str) -> dict[str, Any] | None:
        """GET /dr/requests/{id}/report (activation and delivery), None if the controller has no such request."""
        call = "GET /dr/requests/{id}/report"
        r = await _send(
            self.http, call, "GET", f"{self.base}/dr/requests/{request_id}/report", headers=self._headers
        )
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise VenHttpError(call, r.status_code, r.text)
        return dict(r.json())

    async def cancel(self, request_id: str) -> bool:
        """POST /dr/requests/{id}/cancel; False if the controller does not know it."""
        call = "POST /dr/requests/{id}/cancel"
        r = await _send(
            self.http, call, "POST", f"{self.base}/dr/requests/{request_id}/cancel", headers=self._headers
        )
        if r.status_code == 404:
            return False
        if r.status_code != 200:
            raise VenHttpError(call, r.status_code, r.text)
        return True
