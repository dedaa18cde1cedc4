"""Disputes of settlements: the FSP disputes, the market operator resolves (our policy, after USEF's FlexSettlement).

States: `open` → `accepted` | `rejected`, nothing after (one dispute per settlement).

- An FSP disputes **its own** settlement with a reason, within `market.dispute_window_s`
  of the settlement's first making (default 5 days, our policy); a second dispute of the
  same settlement is refused (409), as is one after the window (422 naming its end).
- The operator **rejects** with a reason (the settlement stands), or **accepts** stating
  the baseline to settle against: the order is settled again from the same stored data
  with that baseline (`revision` + 1, sent to the FSP like any settlement); a baseline
  that cannot be computed leaves the dispute open with the reason (422).

Every check-and-write runs in the book's lock and the store's write section.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cloud_controller.market.book import Book, Refused
from cloud_controller.market.settling import Metering, baseline_of, settlement_of
from protocols.market import MarketDispute, MarketSettlement, ResolveBody

__all__ = ["dispute_settlement", "resolve_dispute"]


def dispute_settlement(book: Book, order_id: str, fsp: str, reason: str, now: datetime) -> MarketDispute:
    """Open a dispute of `order_id`'s settlement by its FSP, within the window."""
    with book.section():
        settled = {s.order_id: s for s in book.store.settlements()}.get(order_id)
        if settled is None:
            raise Refused(404, "order_id", f"no settlement of order {order_id!r}")
        if settled.fsp != fsp:
            raise Refused(403, "order_id", f"the settlement of {order_id!r} belongs to another FSP")
        known = book.store.dispute(order_id)
        if known is not None:
            raise Refused(
                409, "order_id", f"the settlement of {order_id!r} is disputed already ({known.status})"
            )
        closes = settled.ts + timedelta(seconds=book.config.dispute_window_s)
        if now > closes:
            raise Refused(
                422, "order_id", f"the dispute window closed at {closes.isoformat()} (now {now.isoformat()})"
            )
        d = MarketDispute(order_id=order_id, fsp=fsp, ts=now, reason=reason)
        book.store.put_dispute(d)
    return d


def resolve_dispute(
    book: Book, order_id: str, body: ResolveBody, now: datetime, metering: Metering
) -> tuple[MarketDispute, MarketSettlement | None]:
    """The operator's decision: (the dispute, the new settlement when accepted)."""
    with book.section():
        d = book.store.dispute(order_id)
        if d is None:
            raise Refused(404, "order_id", f"no dispute of order {order_id!r}")
        if d.status != "open":
            raise Refused(409, "order_id", f"the dispute of {order_id!r} is {d.status} already: open only")
        if body.decision == "reject":
            rejected = MarketDispute.model_validate(
                d.model_dump() | {"status": "rejected", "resolved_ts": now, "resolution": body.reason}
            )
            book.store.put_dispute(rejected)
            return rejected, None
        assert body.baseline is not None  # ResolveBody requires it on accept
        old = {s.order_id: s for s in book.store.settlements()}[order_id]
        order = next(o for o in book.store.orders() if o.order_id == order_id)
        found = book.store.offer(order.offer_id)
        if found is None:
            raise Refused(422, "baseline", f"the offer of {order_id!r} is gone: nothing to meter")
        try:
            base, actual = baseline_of(book.store, order, found[0].sites, body.baseline, metering)
        except ValueError as exc:
            raise Refused(422, "baseline", str(exc)) from None
        new = settlement_of(
            order, base, actual, now, body.baseline, book.config.penalty_factor, revision=old.revision + 1
        )
        book.store.put_settlement(new)
        accepted = MarketDispute.model_validate(
            d.model_dump()
            | {
                "status": "accepted",
                "resolved_ts": now,
                "resolution": body.reason,
                "baseline": body.baseline,
                "net_before_eur": old.net_eur,
                "net_after_eur": new.net_eur,
            }
        )
        book.store.put_dispute(accepted)
    return accepted, new
