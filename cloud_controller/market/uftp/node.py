"""GridFlex's UFTP transport: verify what arrives, hand it to its role, sign and POST what leaves.

UFTP answers asynchronously: the HTTP response to a SignedMessage is only "received"
(200, empty); the reply (FlexOffer, FlexOrderResponse, ...) is a new message POSTed later
to the sender's own endpoint. So `receive` checks everything it can synchronously — the
envelope, a configured sender, the signature, the schema, the inner sender matching the
envelope, the message fitting the role it was sent to — answers 400/401/403 with the
reason (counted in `stats.refused`), and runs the role's handler as a task. A handler
that fails is logged at ERROR, counted (`stats.handler_errors`) and kept in `failures`,
never lost in a log only. The library's DSO/AGR would answer 500 to an unknown sender;
we answer 403 with the reason.

Sending is **one message in flight per peer endpoint** (`send` holds a lock per endpoint
until the peer's HTTP answer): shapeshifter-uftp 2.4.0 parses every inbound message with
one shared xsdata context whose root-type index is cleared and rebuilt whenever
`sys.modules` has grown since the last parse, so two of our messages parsed at once in its
threaded service can find the index empty and get HTTP 400 (`SchemaException`, "No class
found matching root") for a valid message (docs/market.md, "The intermittent HTTP 400").
A 4xx answer is the peer's verdict: logged at WARNING with the inner XML we signed and
the peer's answer, and kept in `failures`, so such a refusal can be diagnosed afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from cloud_controller.market.uftp.codec import XmlError, decode, encode
from cloud_controller.market.uftp.config import UftpConfig, UftpPeer
from cloud_controller.market.uftp.envelope import (
    BadSignature,
    SigningKey,
    open_envelope,
    parse_envelope,
    seal,
    verify_key,
)
from cloud_controller.market.uftp.messages import (
    FlexOffer,
    FlexOfferResponse,
    FlexOfferRevocation,
    FlexOfferRevocationResponse,
    FlexOrder,
    FlexOrderResponse,
    FlexRequest,
    FlexRequestResponse,
    FlexSettlement,
    FlexSettlementResponse,
    PayloadMessage,
    Role,
)
from cloud_controller.market.uftp.prognosis_messages import (
    DPrognosis,
    DPrognosisResponse,
    Metering,
    MeteringResponse,
)
from protocols.backoff import Backoff
from protocols.clock import Clock
from protocols.errors import GridflexError

__all__ = ["ACCEPTS", "OTHER", "Handler", "NodeStats", "Refusal", "UftpNode", "UftpSendError"]

log = logging.getLogger(__name__)

#: what each of our roles takes (the other party's messages to it)
ACCEPTS: dict[Role, tuple[type[PayloadMessage], ...]] = {
    "DSO": (
        FlexRequestResponse,
        FlexOffer,
        FlexOfferRevocation,
        FlexOrderResponse,
        FlexSettlementResponse,
        DPrognosis,
        Metering,
    ),
    "AGR": (
        FlexRequest,
        FlexOfferResponse,
        FlexOfferRevocationResponse,
        FlexOrder,
        FlexSettlement,
        DPrognosisResponse,
        MeteringResponse,
    ),
}
OTHER: dict[Role, Role] = {"DSO": "AGR", "AGR": "DSO"}
MAX_FAILURES_KEPT = 100

#: (message, the peer that sent it) -> None; raise to report a failure
Handler = Callable[[PayloadMessage, UftpPeer], Awaitable[None]]


class UftpSendError(GridflexError):
    """A message the peer's endpoint did not take (HTTP status and body in the message)."""


@dataclass
class NodeStats:
    """Counters of the UFTP transport (`GET /uftp/status`)."""

    received: int = 0
    sent: int = 0
    send_failed: int = 0
    retries: int = 0
    handler_errors: int = 0
    #: refusals by reason class: unknown_sender, bad_signature, schema, sender_mismatch, ...
    refused: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Refusal:
    """The HTTP answer to a SignedMessage we do not take."""

    status: int
    kind: str
    reason: str


class UftpNode:
    """One UFTP participant (our domain) in one or both roles."""

    def __init__(
        self, config: UftpConfig, key: SigningKey, *, clock: Clock, client: httpx.AsyncClient | None = None
    ) -> None:
        self.config = config
        self.key = key
        self.clock = clock
        self._client = client  # made on first send (an SSL context costs ~0.1 s)
        self.handlers: dict[Role, Handler] = {}
        self.stats = NodeStats()
        self.failures: deque[dict[str, str]] = deque(maxlen=MAX_FAILURES_KEPT)
        self._keys = {(p.domain, p.role): verify_key(p.public_key) for p in config.peers}
        self._tasks: set[asyncio.Task[None]] = set()
        #: endpoint -> the lock that keeps one of our messages in flight to it (module docstring)
        self._in_flight: dict[str, asyncio.Lock] = {}

    async def aclose(self) -> None:
        """Wait for running handlers (bounded by the client's timeout), then close the client."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.config.timeout_s)
        if self._client is not None:
            await self._client.aclose()

    def client(self) -> httpx.AsyncClient:
        """The HTTP client for outgoing messages."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.config.timeout_s)
        return self._client

    # -- receiving -----------------------------------------------------------------------

    def _refuse(self, status: int, kind: str, reason: str) -> Refusal:
        self.stats.refused[kind] += 1
        log.warning("UFTP message refused (%s): %s", kind, reason)
        return Refusal(status, kind, reason)

    async def receive(self, role: Role, body: bytes) -> Refusal | None:
        """Check a SignedMessage sent to our `role`; None when taken (its handler runs as a task)."""
        if role not in self.config.roles or role not in self.handlers:
            return self._refuse(404, "role", f"GridFlex does not act as {role} here")
        try:
            env = parse_envelope(body)
        except XmlError as exc:
            return self._refuse(400, "envelope", str(exc))
        if env.sender_role != OTHER[role]:
            return self._refuse(
                403, "sender_role", f"a {env.sender_role} may not write to our {role} endpoint"
            )
        public = self._keys.get((env.sender_domain, env.sender_role))
        peer = self.config.peer(env.sender_domain, env.sender_role)
        if public is None or peer is None:
            return self._refuse(
                403, "unknown_sender", f"{env.sender_domain} ({env.sender_role}) is not a configured peer"
            )
        try:
            inner = open_envelope(env, public)
        except BadSignature as exc:
            return self._refuse(401, "bad_signature", str(exc))
        try:
            msg = decode(inner)
        except XmlError as exc:
            return self._refuse(400, "schema", str(exc))
        if msg.sender_domain != env.sender_domain:
            return self._refuse(
                403,
                "sender_mismatch",
                f"inner SenderDomain {msg.sender_domain!r} is not the envelope's {env.sender_domain!r}",
            )
        if msg.recipient_domain is not None and msg.recipient_domain != self.config.domain:
            return self._refuse(
                403, "recipient", f"addressed to {msg.recipient_domain!r}, we are {self.config.domain!r}"
            )
        if not isinstance(msg, ACCEPTS[role]):
            return self._refuse(400, "misdirected", f"<{msg.TAG}> is not for a {role}")
        self.stats.received += 1
        task = asyncio.create_task(self._handle(role, msg, peer), name=f"uftp-{role}-{msg.TAG}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return None

    async def _handle(self, role: Role, msg: PayloadMessage, peer: UftpPeer) -> None:
        try:
            await self.handlers[role](msg, peer)
        except Exception as exc:  # a handler's failure is reported, not lost (see the module docstring)
            self.stats.handler_errors += 1
            self.failures.append({"message": msg.TAG, "message_id": msg.message_id, "reason": repr(exc)})
            log.exception("UFTP %s handler failed on %s %s", role, msg.TAG, msg.message_id)

    async def idle(self, timeout_s: float = 5.0) -> None:
        """Wait until no handler runs (tests; bounded)."""
        async with asyncio.timeout(timeout_s):
            while self._tasks:
                await asyncio.wait(set(self._tasks))

    # -- sending -------------------------------------------------------------------------

    def header(self, peer: UftpPeer, conversation_id: str | None = None) -> dict[str, Any]:
        """The attributes every message carries, from us to `peer` (a new conversation unless given)."""
        return {
            "version": "3.1.0",
            "sender_domain": self.config.domain,
            "recipient_domain": peer.domain,
            "time_stamp": self.clock.now().isoformat(),
            "message_id": str(uuid.uuid4()),
            "conversation_id": conversation_id or str(uuid.uuid4()),
        }

    async def send(self, peer: UftpPeer, message: PayloadMessage) -> None:
        """Sign `message` as our role towards `peer` and POST it; UftpSendError unless HTTP 200.

        One message in flight per endpoint (the module docstring says why). An unreachable
        peer, a timeout, 5xx or 429 is tried again (`send_attempts`, jittered backoff on
        our Clock); any other answer is the peer's verdict and is not repeated.
        """
        inner = encode(message)
        body = seal(inner, self.key, self.config.domain, OTHER[peer.role])
        lock = self._in_flight.setdefault(peer.endpoint, asyncio.Lock())
        backoff = Backoff(min_s=0.5, max_s=10.0)
        for attempt in range(1, self.config.send_attempts + 1):
            try:
                async with lock, asyncio.timeout(self.config.timeout_s):
                    r = await self.client().post(
                        peer.endpoint, content=body, headers={"Content-Type": "text/xml; charset=utf-8"}
                    )
            except (httpx.HTTPError, TimeoutError) as exc:
                why, again = repr(exc), True
            else:
                if r.status_code == 200:
                    self.stats.sent += 1
                    return
                why, again = (
                    f"HTTP {r.status_code} {r.text[:300]}",
                    r.status_code >= 500 or r.status_code == 429,
                )
                if 400 <= r.status_code < 500:
                    self._refused_by_peer(peer, message, inner, why)
            if not again or attempt == self.config.send_attempts:
                self.stats.send_failed += 1
                raise UftpSendError(f"{message.TAG} to {peer.endpoint} (attempt {attempt}): {why}")
            self.stats.retries += 1
            log.warning("UFTP %s to %s failed (%s); trying again", message.TAG, peer.endpoint, why)
            await self.clock.sleep(backoff.next_delay_s())

    def _refused_by_peer(self, peer: UftpPeer, message: PayloadMessage, inner: bytes, why: str) -> None:
        """A 4xx from `peer`: the XML we signed and its answer, logged and kept (`failures`)."""
        xml = inner.decode("utf-8")
        log.warning("UFTP %s refused by %s: %s; the XML we signed:\n%s", message.TAG, peer.domain, why, xml)
        self.failures.append(
            {"message": message.TAG, "message_id": message.message_id, "reason": why, "xml": xml[:20_000]}
        )

    def peers(self, role: Role) -> list[UftpPeer]:
        """The configured peers in `role`."""
        return [p for p in self.config.peers if p.role == role]

    def status(self) -> dict[str, Any]:
        """`GET /uftp/status`."""
        s = self.stats
        return {
            "domain": self.config.domain,
            "roles": list(self.config.roles),
            "public_key": self.key.public_b64,
            "peers": [
                {"domain": p.domain, "role": p.role, "endpoint": p.endpoint} for p in self.config.peers
            ],
            "received": s.received,
            "sent": s.sent,
            "send_failed": s.send_failed,
            "retries": s.retries,
            "handler_errors": s.handler_errors,
            "refused": dict(s.refused),
            "failures": list(self.failures),
        }
