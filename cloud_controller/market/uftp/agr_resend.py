"""Our AGR re-sends its D-Prognosis on its own when what we expect at a congestion point changes.

A DSO plans on the last D-Prognosis we gave it, so a stale one misleads it: after a new
plan (the forecast moved) or an executed FlexOrder (its ISPs now carry less consumption)
the prognosis of each (peer, congestion point, day) we already sent one for is rebuilt
(`AgrPrognoses.portfolio_w`) and re-sent with the next Revision **only if it differs**
from the last one we sent, and **never sooner than `prognosis_min_interval_s`** after
it: a change inside the interval is sent when the interval ends (one waiting task per
stream, which rebuilds it then), so a DSO is not flooded by a planner that runs every
few minutes. Days that have ended are left alone; a day we never sent a prognosis of is
not started here (the first one goes with our first FlexOffer there).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date, datetime, timedelta

from cloud_controller.market.uftp.agr_prognosis import AgrPrognoses, day_bounds
from cloud_controller.market.uftp.node import UftpSendError
from cloud_controller.market.uftp.prognosis_messages import DPrognosis

__all__ = ["PrognosisResender", "Stream"]

log = logging.getLogger(__name__)

#: (peer domain, congestion point, local day ISO, time zone)
Stream = tuple[str, str, str, str]


class PrognosisResender:
    """Re-sends changed D-Prognoses of `prognoses`, at most once per `min_interval_s` per stream."""

    def __init__(self, prognoses: AgrPrognoses, min_interval_s: float) -> None:
        self.prognoses = prognoses
        self.min_interval_s = min_interval_s
        #: one rebuild and send at a time: two callers must not send one Revision twice or out of order
        self._lock = asyncio.Lock()
        self._waiting: dict[Stream, asyncio.Task[None]] = {}

    def streams(self) -> list[Stream]:
        """Every (peer, point, day, tz) we sent a D-Prognosis of whose day has not ended, oldest first."""
        now = self.prognoses.node.clock.now()
        default_tz = self.prognoses.node.config.time_zone
        out: list[Stream] = []
        for p in self.prognoses.prognoses.values():
            key = (p.peer, p.congestion_point, p.period, p.time_zone or default_tz)
            if key not in out and day_bounds(date.fromisoformat(p.period), key[3])[-1][1] > now:
                out.append(key)
        return out

    async def resend_changed(
        self, peer: str | None = None, congestion_point: str | None = None
    ) -> list[DPrognosis]:
        """Re-send each stream (of `peer` / `congestion_point` if given) whose prognosis changed and is due.

        Returns what was sent; a stream changed within the interval is left to its waiting task.
        Raises UftpSendError when a DSO does not take one (the others are still tried first).
        """
        sent: list[DPrognosis] = []
        errors: list[UftpSendError] = []
        for stream in self.streams():
            if peer not in (None, stream[0]) or congestion_point not in (None, stream[1]):
                continue
            try:
                msg = await self._resend(stream)
            except UftpSendError as exc:
                errors.append(exc)
                continue
            if msg is not None:
                sent.append(msg)
        if errors:
            raise errors[0]
        return sent

    async def _resend(self, stream: Stream) -> DPrognosis | None:
        domain, point, period, tz = stream
        node = self.prognoses.node
        peer = node.config.peer(domain, "DSO")
        if peer is None:
            return None
        async with self._lock:
            last = self.prognoses.last_prognosis(domain, point, period)
            power_w = await self.prognoses.portfolio_w(peer, point, date.fromisoformat(period), tz)
            if last is None or power_w is None or power_w == last.power_w:
                return None
            if last.sent_at is not None:
                due = last.sent_at + timedelta(seconds=self.min_interval_s)
                if due > node.clock.now():
                    self._wait(stream, due)
                    return None
            msg = await self.prognoses.build_prognosis(
                peer, point, date.fromisoformat(period), tz, power_w=power_w
            )
            if msg is not None:  # sent under the lock: Revisions leave in their order
                log.info(
                    "UFTP D-Prognosis %s %s %s re-sent as Revision %d", domain, point, period, msg.revision
                )
                await node.send(peer, msg)
        return msg

    def _wait(self, stream: Stream, due: datetime) -> None:
        """Rebuild `stream` at `due`, when its interval has passed (one waiting task per stream)."""
        if stream in self._waiting:
            return

        async def later() -> None:
            clock = self.prognoses.node.clock
            await clock.sleep(max(0.0, (due - clock.now()).total_seconds()))
            self._waiting.pop(stream, None)
            try:
                await self._resend(stream)
            except UftpSendError as exc:
                self.prognoses.node.failures.append(
                    {"message": "D-Prognosis", "message_id": "", "reason": str(exc)}
                )
                log.warning("UFTP D-Prognosis of %s to %s not re-sent: %s", stream[2], stream[0], exc)

        self._waiting[stream] = asyncio.create_task(later(), name=f"uftp-dprognosis-{stream[0]}-{stream[2]}")

    def waiting(self) -> list[Stream]:
        """The streams whose change waits for the interval to end."""
        return list(self._waiting)

    async def aclose(self) -> None:
        """Cancel the waiting re-sends (a restart's next plan rebuilds them)."""
        tasks = list(self._waiting.values())
        self._waiting.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
