"""`gridflex demo --dr`: the closed loop plus one DR event (issue 20), end to end through the controller's API.

The loop is `gridflex demo`'s (buildings, agents, Mosquitto, controller on one SimClock). On
top of it: a contract per battery site written into the run folder and loaded by the
controller as its `dr.contracts`, an operator token made at start (never in the
repository), one reduction request posted to `POST /dr/requests` at its notice time, then
the run continues through the event and its delivery reports. The summary gains a DR
section (gridflex.loop.dr_event); the exit code is non-zero when the request was not
selected in full or nothing was delivered.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from cloud_controller import CloudConfig
from gridflex.loop.closed_loop import ClosedLoop
from gridflex.loop.dr_event import (
    MEASURED_POINT,
    DrEventSettings,
    DrSection,
    asset_delivery,
    contracts_yaml,
    dr_section,
    interval_bounds,
    render_dr_markdown,
    request_body,
)
from gridflex.loop.scenario import LoopScenario, LoopSettings

__all__ = ["DrClosedLoop", "default_event", "run_dr", "run_dr_demo"]

console = Console()
#: Seconds (simulated) after an interval's end before its delivery is computed: the agents'
#: telemetry of that interval has reached the store (they poll every `poll_s` or faster).
REPORT_AFTER_S = 300.0
#: How far before an interval the asset's samples are read (its last one opens the interval), as the
#: controller's delivery does (`cloud_controller/dr/activator.py`).
HOLD_LOOKBACK_S = 900.0
#: The exit code when the DR event failed (not selected in full, or nothing delivered).
EXIT_DR_FAILED = 3


def default_event(settings: LoopSettings, start_hhmm: str | None = None) -> DrEventSettings:
    """The demo's event: 4 × 15 min from 15:00 simulated (or `start_hhmm`), posted 50 min ahead (30 + 20 for the post).

    Why 15:00 by default: it is before T_idx_77's evening congestion, so the households' own
    evening load (EVs arriving) moves the site meters' baseline less; `--dr-start 17:00` puts it
    into the congestion, where the planner now keeps the selected batteries for it (DR
    reservations, docs/dr.md §6-§7).
    """
    start = settings.day + timedelta(hours=15)
    if start_hhmm is not None:
        try:
            hh, mm = (int(x) for x in start_hhmm.split(":"))
        except ValueError:
            raise ValueError(f"--dr-start must be HH:MM, got {start_hhmm!r}") from None
        if not (0 <= hh <= 23 and 0 <= mm <= 59):
            raise ValueError(f"--dr-start must be HH:MM, got {start_hhmm!r}")
        start = settings.day + timedelta(hours=hh, minutes=mm)
    return DrEventSettings(start=start, intervals=4, step_min=15, notice_s=3000.0)


class DrClosedLoop(ClosedLoop):
    """The closed loop whose controller holds the fleet's DR contracts and an operator token."""

    def __init__(
        self, scenario: LoopScenario, out_dir: Path, event: DrEventSettings, *, api_port: int = 0
    ) -> None:
        super().__init__(scenario, out_dir, api_port=api_port)
        self.event = event
        self._token = secrets.token_hex(24)

    def cloud_config(self) -> CloudConfig:
        """The loop's configuration plus `dr` (the contracts file) and the operator's token file."""
        base = super().cloud_config()
        folder = self.out_dir / "cloud"
        folder.mkdir(parents=True, exist_ok=True)
        contracts = folder / "dr-contracts.yaml"
        contracts.write_text(contracts_yaml(self.registry.sites, self.event), encoding="utf-8")
        token = folder / "operator.token"
        token.touch(mode=0o600)
        token.write_text(self._token, encoding="utf-8")
        dr = base.dr.model_copy(
            update={
                "contracts": contracts,
                "step_minutes": self.event.step_min,
                "report_after_s": REPORT_AFTER_S,
            }
        )
        api = base.api.model_copy(update={"operator_token_file": token})
        return base.model_copy(update={"api": api, "dr": dr})

    def _client(self) -> httpx.AsyncClient:
        assert self.controller is not None and self.controller.api_port is not None
        return httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.controller.api_port}",
            headers={"Authorization": f"Bearer {self._token}"},
            timeout=60.0,
        )

    async def wait_api(self, timeout_s: float = 60.0) -> None:
        """Until the controller's API listens (wall seconds)."""
        deadline = time.monotonic() + timeout_s
        while self.controller is None or self.controller.api_port is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the controller's API did not come up within {timeout_s:g} s")
            self.check()
            await asyncio.sleep(0.1)

    async def post_request(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """POST the event's request now; (the body posted, the answer with its HTTP `code`)."""
        await self.wait_api()
        body = request_body(self.registry.sites, self.event, self.clock.now())
        async with self._client() as http:
            resp = await http.post("/dr/requests", json=body)
        answer: dict[str, Any] = (
            resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
        )
        if resp.status_code != 201:
            answer = {
                "status": "refused" if resp.status_code == 422 else f"http {resp.status_code}",
                "detail": answer,
            }
        return body, answer

    async def fetch_report(self) -> dict[str, Any] | None:
        """`GET /dr/requests/{id}/report`, None when there is none."""
        async with self._client() as http:
            resp = await http.get(f"/dr/requests/{self.event.request_id}/report")
        return resp.json() if resp.status_code == 200 else None

    def asset_delivery(self, answer: dict[str, Any]) -> list[dict[str, Any]]:
        """The selected sources' measured power per interval, from the controller's store (before it closes)."""
        assert self.controller is not None
        sel = answer.get("selection") or {}
        sources = [s for s in sel.get("sources", []) if any(abs(float(k)) > 1e-9 for k in s.get("kw", []))]
        if not sources:
            return []
        ev = self.event
        bounds = interval_bounds(ev.start, ev.end, ev.intervals)
        since = ev.start - timedelta(seconds=HOLD_LOOKBACK_S)
        store = self.controller.store
        series = {
            (s["site"], s["asset"], point): store.read_series(s["site"], s["asset"], point, since, ev.end)
            for s in sources
            for point in (MEASURED_POINT.get(str(s.get("kind")), "p_kw"), "soc_pct")
        }
        return asset_delivery(sources, bounds, series)

    def vetoes(self) -> list[dict[str, Any]]:
        """The event's commands the edge clamped (a comfort veto or a device limit), with the agent's reason."""
        assert self.controller is not None
        return [
            {
                "site": t.command.site,
                "asset": t.command.asset,
                "kind": t.command.kind,
                "value": t.command.value,
                "valid_from": t.command.valid_from.isoformat(),
                "reason": t.ack.reason if t.ack is not None else None,
            }
            for t in list(self.controller.tracker.sent.values())
            if t.command.request_id == self.event.request_id and t.status == "clamped"
        ]


def _append_to_summary(out: Path, section: DrSection) -> None:
    """summary.json gains `dr`, summary.md its DR section (files written by the demo's report)."""
    path = out / "summary.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["dr"] = section.data
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    md = out / "summary.md"
    md.write_text(
        md.read_text(encoding="utf-8").rstrip("\n") + "\n\n" + render_dr_markdown(section), encoding="utf-8"
    )


async def run_dr(settings: LoopSettings, event: DrEventSettings, out: Path) -> int:
    """The run: 0 when the loop ran and the event was selected in full and delivered something."""
    from cloud_controller import build_schutterwald_region
    from gridflex.cli import demo
    from gridflex.loop.scenario import build_scenario

    event.check_window(settings.start, settings.end, REPORT_AFTER_S)
    t0 = time.monotonic()
    with console.status("building the region, the fleet and its no-control twin ..."):
        region = await asyncio.to_thread(build_schutterwald_region)
        scenario = await asyncio.to_thread(build_scenario, settings, region)
    with console.status("importing the meter history: an AC power flow per interval ..."):
        await asyncio.to_thread(lambda: (scenario.yesterday_meters, scenario.older_meters))
    console.print(demo._scenario_line(scenario), soft_wrap=True)
    loop = DrClosedLoop(scenario, out / "run", event)
    async with loop:
        with console.status(f"closed loop until the DR request's notice ({event.post_at:%H:%M} UTC) ..."):
            await loop.run_until(event.post_at)
        body, answer = await loop.post_request()
        console.print(
            f"DR request {event.request_id}: reduce {body['p_kw']:g} kW {event.start:%H:%M}-{event.end:%H:%M} "
            f"UTC, posted at {loop.clock.now():%H:%M} -> {answer.get('status')}",
            soft_wrap=True,
        )
        with console.status("closed loop through the DR event ..."):
            await loop.run_until(settings.end)
        report = await loop.fetch_report() if answer.get("status") in ("selected", "partial") else None
        vetoes = loop.vetoes()
        assets = loop.asset_delivery(answer)
        result = await loop.finish()
        actions = demo._control_actions(loop, result.interval_starts)
    code = await demo._report(settings, scenario, result, actions, out, time.monotonic() - t0, False)
    section = dr_section(body, answer, report, vetoes, assets)
    if (out / "summary.json").exists():
        _append_to_summary(out, section)
    console.print(render_dr_markdown(section), markup=False, highlight=False)
    if code != 0:
        return code
    return 0 if section.ok else EXIT_DR_FAILED


def run_dr_demo(settings: LoopSettings, out: Path, start_hhmm: str | None = None) -> int:
    """`gridflex demo --dr`'s entry: the event (`--dr-start`, default 15:00) in `settings`' window; Ctrl-C is 130."""
    try:
        return asyncio.run(run_dr(settings, default_event(settings, start_hhmm), out))
    except KeyboardInterrupt:
        console.print("interrupted: the DR demo reports only a finished run")
        return 130
    except ValueError as exc:  # the event does not fit the window
        console.print(str(exc), markup=False)
        return 2
