"""The market section of the demo's summary: requests, offers, orders, delivery, penalties, payments.

Pure: the market store's rows in, a JSON-able dict and its Markdown out, so the figures are
tested without running a demo.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from protocols.market import ISP_S, MarketOffer, MarketOrder, MarketRequest, MarketSettlement

__all__ = ["market_markdown", "market_section"]

ISP_H = ISP_S / 3600.0


def market_section(
    requests: Sequence[tuple[MarketRequest, str]],
    offers: Sequence[tuple[MarketOffer, str]],
    orders: Sequence[MarketOrder],
    settlements: Sequence[MarketSettlement],
    *,
    not_activated: dict[str, str] | None = None,
    unsettled: Sequence[dict[str, str]] = (),
) -> dict[str, Any]:
    """Requests (kW per ISP, last revision), offers per FSP and status, orders, per-ISP delivery, money."""
    req_isps = {i.start.isoformat(): i.kw for r, _ in requests for i in sorted(r.isps, key=lambda i: i.start)}
    ordered: dict[str, float] = defaultdict(float)
    for o in orders:
        for i in o.isps:
            ordered[i.start.isoformat()] += i.kw
    delivered: dict[str, float] = defaultdict(float)
    for s in settlements:
        for si in s.isps:
            delivered[si.start.isoformat()] += si.delivered_kw
    per_fsp: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for o in orders:
        per_fsp[o.fsp]["ordered_kwh"] += sum(i.kw for i in o.isps) * ISP_H
        per_fsp[o.fsp]["ordered_eur"] += o.price_eur
    for s in settlements:  # the settled orders only: net = price − penalty holds per FSP
        f = per_fsp[s.fsp]
        f["price_eur"] += s.price_eur
        f["delivered_kwh"] += s.delivered_kwh
        f["deficiency_kwh"] += s.deficiency_kwh
        f["penalty_eur"] += s.penalty_eur
        f["net_eur"] += s.net_eur
    return {
        "requests": {
            "count": len(requests),
            "revisions": sum(r.revision for r, _ in requests),
            "status": dict(Counter(s for _, s in requests)),
            "kw_per_isp": req_isps,
        },
        "offers": {
            "count": len(offers),
            "by_fsp_status": dict(Counter(f"{o.fsp}:{s}" for o, s in offers)),
        },
        "orders": {
            "count": len(orders),
            "kw_per_isp": dict(sorted(ordered.items())),
            "kwh": round(sum(ordered.values()) * ISP_H, 3),
            "price_eur": round(sum(o.price_eur for o in orders), 4),
            "not_activated": dict(not_activated or {}),
        },
        "settlement": {
            "settled_orders": len(settlements),
            "unsettled": list(unsettled),
            "ordered_vs_delivered_kw_per_isp": {
                t: {"ordered": round(kw, 2), "delivered": round(delivered.get(t, 0.0), 2)}
                for t, kw in sorted(ordered.items())
                if kw > 0
            },
            "delivered_kwh": round(sum(s.delivered_kwh for s in settlements), 3),
            "deficiency_kwh": round(sum(s.deficiency_kwh for s in settlements), 3),
            "price_eur": round(sum(s.price_eur for s in settlements), 4),
            "penalty_eur": round(sum(s.penalty_eur for s in settlements), 4),
            "net_eur": round(sum(s.net_eur for s in settlements), 4),
        },
        "per_fsp": {f: {k: round(v, 4) for k, v in d.items()} for f, d in sorted(per_fsp.items())},
    }


def market_markdown(m: dict[str, Any]) -> str:
    """The section as Markdown, appended to summary.md."""
    r, o, st = m["requests"], m["orders"], m["settlement"]
    lines = [
        "",
        "## Market",
        "",
        f"- requests: {r['count']} ({r['revisions']} revisions), status {r['status']}; "
        f"need per ISP (last revision): "
        + ", ".join(f"{t[11:16]} {kw:g} kW" for t, kw in r["kw_per_isp"].items()),
        f"- offers: {m['offers']['count']}: {m['offers']['by_fsp_status']}",
        f"- orders: {o['count']}, {o['kwh']:.2f} kWh for {o['price_eur']:.2f} EUR",
        f"- settled orders: {st['settled_orders']}, delivered {st['delivered_kwh']:.2f} kWh, "
        f"short {st['deficiency_kwh']:.2f} kWh, price {st['price_eur']:.2f} EUR, penalties {st['penalty_eur']:.2f} EUR, "
        f"net paid {st['net_eur']:.2f} EUR",
        "",
        "| ISP (UTC) | ordered kW | delivered kW |",
        "|---|---|---|",
        *(
            f"| {t[11:16]} | {v['ordered']:.1f} | {v['delivered']:.1f} |"
            for t, v in st["ordered_vs_delivered_kw_per_isp"].items()
        ),
        "",
        "Per FSP: ordered (every order) and settled (orders whose ISPs were metered).",
        "",
        "| FSP | ordered kWh | ordered EUR | settled price EUR | delivered kWh | short kWh | penalty EUR | net EUR |",
        "|---|---|---|---|---|---|---|---|",
        *(
            f"| {f} | {d.get('ordered_kwh', 0):.2f} | {d.get('ordered_eur', 0):.2f} | {d.get('price_eur', 0):.2f} | "
            f"{d.get('delivered_kwh', 0):.2f} | {d.get('deficiency_kwh', 0):.2f} | "
            f"{d.get('penalty_eur', 0):.2f} | {d.get('net_eur', 0):.2f} |"
            for f, d in m["per_fsp"].items()
        ),
    ]
    if st.get("estimated_isps"):
        lines += [
            "",
            f"- actual estimated (interpolated: a poll missed) for: {', '.join(st['estimated_isps'])}",
        ]
    if o["not_activated"] or st["unsettled"]:
        lines += ["", f"- not activated: {o['not_activated']}", f"- unsettled: {st['unsettled']}"]
    return "\n".join(lines) + "\n"
